package discovery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"

	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/model"
)

// The browse query lists the PTR records it holds with more than half
// their TTL left, for the instances the caller lists, and the responder of
// a listed machine stays silent until the browser stops listing it, at a
// random point of the last fifth of half the TTL.
func TestPTRQueryKnownAnswers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	resp := func(inst string) *responder {
		return &responder{instance: inst, host: inst + ".local.", port: 22, ttl: 120,
			txt: []string{`properties."hostname"="x"`}, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}
	}
	for i := 0; i < 200; i++ {
		known := map[string]*knownPTR{
			"disnix-a":  newKnownPTR(t0, 120*time.Second, 120*time.Second),
			"disnix-b":  newKnownPTR(t0, 120*time.Second, 120*time.Second),
			"disnix-no": newKnownPTR(t0, 120*time.Second, 120*time.Second),
		}
		k := known["disnix-a"]
		if lo, hi := t0.Add(48*time.Second), t0.Add(60*time.Second); k.until.Before(lo) || !k.until.Before(hi) {
			t.Fatalf("listed until %v after the answer, want within [48 s, 60 s)", k.until.Sub(t0))
		}
		// A PTR with a long TTL in a message whose records expire sooner
		// (SRV and A at 120 s) is listed by the shorter.
		if long := newKnownPTR(t0, 4500*time.Second, 120*time.Second); !long.until.Before(t0.Add(60 * time.Second)) {
			t.Fatalf("a 4500 s PTR in a message expiring after 120 s listed until %v, want before 60 s", long.until.Sub(t0))
		}
		listed := func(inst string) bool { return inst != "disnix-no" }
		for _, c := range []struct {
			at      time.Time
			want    []string
			answers map[string]bool // whether the instance's responder answers
		}{
			{t0.Add(time.Second), []string{"disnix-a", "disnix-b"}, map[string]bool{"disnix-a": false, "disnix-no": true}},
			{k.until.Add(-time.Millisecond), nil, map[string]bool{"disnix-a": false}},
			{k.until, nil, map[string]bool{"disnix-a": true}},
			{t0.Add(61 * time.Second), []string{}, map[string]bool{"disnix-a": true, "disnix-b": true}},
		} {
			q := ptrQuery(known, listed, c.at)
			if len(q.Question) != 1 || q.Question[0].Qtype != dns.TypePTR || q.Question[0].Name != serviceName || q.Response {
				t.Fatalf("query %v, want one PTR question for %s", q.Question, serviceName)
			}
			var got []string
			for _, rr := range q.Answer {
				p := rr.(*dns.PTR)
				inst, _ := instanceOf(p.Ptr)
				got = append(got, inst)
				if age := c.at.Sub(t0); p.Hdr.Ttl < 60 || time.Duration(p.Hdr.Ttl)*time.Second > 120*time.Second-age {
					t.Fatalf("at %v: %s listed with TTL %d, want its remaining TTL, at least half of 120", age, inst, p.Hdr.Ttl)
				}
			}
			if c.want != nil && strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("at %v: listed %v, want %v", c.at.Sub(t0), got, c.want)
			}
			for inst, want := range c.answers {
				if a, _ := resp(inst).answer(q, 5353); (a != nil) != want {
					t.Fatalf("at %v (listed until %v): %s answers %v, want %v", c.at.Sub(t0), k.until.Sub(t0), inst, a != nil, want)
				}
			}
		}
	}
}

// A list too long for one packet is cut to fit RFC 6762's 9000 bytes; the
// instances left out answer.
func TestPTRQueryFitsOnePacket(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	known := map[string]*knownPTR{}
	for i := 0; i < 1000; i++ {
		known[fmt.Sprintf("disnix-%s%04d", strings.Repeat("m", 40), i)] = newKnownPTR(t0, 120*time.Second, 120*time.Second)
	}
	q := ptrQuery(known, func(string) bool { return true }, t0.Add(time.Second))
	buf, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if len(buf) > maxQueryPayload || len(q.Answer) < 100 || len(q.Answer) == len(known) {
		t.Fatalf("query of %d bytes lists %d of %d known answers, want at most %d bytes and at least 100 listed", len(buf), len(q.Answer), len(known), maxQueryPayload)
	}
}

// On a real link: once the browser has a machine whose endpoint answers
// its probes, its queries list the machine's PTR record and the machine
// stops answering them, while it stays a member.
func TestBrowserKnownAnswerSuppression(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddk").RerunTest(t)
		return
	}
	seen, r, out := knownAnswerSetup(t, true)
	inst := strings.ToLower(instanceFQDN(r.instance))
	// An answer to a browse query carries our PTR in the answer section
	// and our TXT in the additional one (an announcement has both in the
	// answer section). Answers are counted from the third query that
	// lists our PTR on, when the answers to the earlier queries (sent
	// 20–120 ms after them) are long out, to the eighth.
	answered, listing, quietAnswers := 0, 0, 0
	deadline := time.After(time.Minute)
	for listing < 8 {
		select {
		case in := <-seen:
			ptr, _ := ours(in.msg.Answer, inst)
			_, extraTXT := ours(in.msg.Extra, inst)
			switch {
			case !in.msg.Response && ptr:
				listing++
			case in.msg.Response && ptr && extraTXT:
				answered++
				if listing >= 3 {
					quietAnswers++
				}
			}
		case <-deadline:
			t.Fatalf("%d queries listed the machine's PTR record after a minute, want 8", listing)
		}
	}
	if answered == 0 {
		t.Fatal("the machine never answered a browse query: the test saw no traffic to suppress")
	}
	if quietAnswers > 0 {
		t.Fatalf("the machine answered %d of 5 queries that listed its PTR record, want none", quietAnswers)
	}
	present := false
	for {
		select {
		case s := <-out:
			switch {
			case s.Infrastructure["quiet"] != nil:
				present = true
			case present:
				t.Fatalf("the silent machine left the infrastructure: events %+v", s.Events)
			}
		default:
			if !present {
				t.Fatal("no snapshot held the machine")
			}
			return
		}
	}
}

// A machine whose endpoint does not answer its probes is never listed: its
// answers stay its liveness.
func TestBrowserListsOnlyAnsweringEndpoints(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddl").RerunTest(t)
		return
	}
	seen, r, _ := knownAnswerSetup(t, false)
	inst := strings.ToLower(instanceFQDN(r.instance))
	queries, answers := 0, 0
	deadline := time.After(time.Minute)
	for queries < 10 || answers < 3 {
		select {
		case in := <-seen:
			ptr, _ := ours(in.msg.Answer, inst)
			_, extraTXT := ours(in.msg.Extra, inst)
			switch {
			case !in.msg.Response && ptr:
				t.Fatal("a query listed the PTR record of a machine whose probes fail")
			case !in.msg.Response && len(in.msg.Question) > 0:
				queries++
			case in.msg.Response && ptr && extraTXT:
				answers++
			}
		case <-deadline:
			t.Fatalf("%d queries and %d answers in a minute, want 10 and 3", queries, answers)
		}
	}
}

// knownAnswerSetup starts, on lo, a machine "quiet" announcing an endpoint
// (answering HTTP when serve is set, a closed port otherwise), a browser
// probing it, and a listener that sees every mDNS packet from before both.
func knownAnswerSetup(t *testing.T, serve bool) (<-chan inbound, *responder, <-chan Snapshot) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := mustTarget(t, "quiet", map[string]any{"properties": map[string]any{"hostname": "quiet", "mem": "1"}})
	if serve {
		srv := &http.Server{Handler: TargetHandler(func() *model.Target { return tg })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	} else {
		ln.Close() // connections are refused
	}
	watch := openLo(t)
	seen := make(chan inbound, 256)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go watch.recv(seen, done, func(bool) bool { return true })

	r := endpointResponder(t, tg, "http://"+ln.Addr().String())
	serveLo(t, r)
	_, out := runBrowser(t, BrowserConfig{
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond,
		ProbeInterval: 200 * time.Millisecond,
	})
	return seen, r, out
}

// endpointResponder is a responder on lo announcing tg (whose hostname is
// its name) with endpoint.
func endpointResponder(t *testing.T, tg *model.Target, endpoint string) *responder {
	t.Helper()
	n, err := NormalizeTarget(tg)
	if err != nil {
		t.Fatal(err)
	}
	txt, _, err := EncodeTXT(n, EncodeOptions{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	r := loResponder(openLo(t), tg.Name)
	r.txt = txt
	return r
}

// ours says whether rrs hold the PTR record and the TXT record of inst.
func ours(rrs []dns.RR, inst string) (ptr, txt bool) {
	for _, rr := range rrs {
		switch x := rr.(type) {
		case *dns.PTR:
			ptr = ptr || strings.EqualFold(x.Ptr, inst)
		case *dns.TXT:
			txt = txt || strings.EqualFold(x.Hdr.Name, inst)
		}
	}
	return ptr, txt
}

// A changed TXT record is announced twice (RFC 6762 §8.4): a browser that
// lists the machine's PTR record hears of a change from announcements
// only, until it stops listing it.
func TestPublisherAnnouncesChangeTwice(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddt").RerunTest(t)
		return
	}
	watch := openLo(t)
	seen := make(chan inbound, 256)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go watch.recv(seen, done, func(bool) bool { return true })
	withMem := func(mem string) *model.Target {
		return mustTarget(t, "twice", map[string]any{"properties": map[string]any{"hostname": "twice", "mem": mem}})
	}
	pub, err := NewPublisher(PublisherConfig{Interfaces: []string{"lo"}, Target: withMem("1"), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = pub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })

	// announced counts the responses until a minute passes or want are
	// seen whose TXT record says mem.
	announced := func(mem string, want int) int {
		n := 0
		deadline := time.After(time.Minute)
		for n < want {
			select {
			case in := <-seen:
				for _, rr := range in.msg.Answer {
					if x, ok := rr.(*dns.TXT); ok && in.msg.Response && slices.ContainsFunc(x.Txt, func(s string) bool {
						return txtFromWire(s) == `properties."mem"="`+mem+`"`
					}) {
						n++
					}
				}
			case <-deadline:
				return n
			}
		}
		return n
	}
	// Both start-up announcements first: the second would carry a change
	// made before it.
	if n := announced("1", 2); n != 2 {
		t.Fatalf("the publisher announced itself %d times, want 2", n)
	}
	if err := pub.SetTarget(withMem("2")); err != nil {
		t.Fatal(err)
	}
	if n := announced("2", 2); n != 2 {
		t.Fatalf("the change was announced %d times, want 2", n)
	}
}
