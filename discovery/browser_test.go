package discovery

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"
	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dydisnix/dydisnix/internal/clock"
	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// The browser loop runs on the injected clock: with a fake clock, a
// machine that stops answering (no goodbye) is removed exactly when the
// no-answer timeout has passed in fake time.
func TestBrowserFakeClockNoAnswer(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddf").RerunTest(t)
		return
	}
	crash := serveLo(t, loResponder(openLo(t), "fake"))

	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	src, out := runBrowser(t, BrowserConfig{
		Clock: clk, BrowseInterval: 2 * time.Second, InitialWait: time.Second, Debounce: 100 * time.Millisecond, ProbeInterval: -1,
	})

	// Step fake time in 100 ms steps until the target shows up. The short
	// wall-clock wait only paces the steps: a slow loop lets more fake time
	// pass before a snapshot, which changes no result checked below.
	next := func(what string, ok func(Snapshot) bool) Snapshot {
		t.Helper()
		for i := 0; i < 400; i++ {
			waitTimer(t, clk)
			clk.Advance(100 * time.Millisecond)
			select {
			case s := <-out:
				if ok(s) {
					return s
				}
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Fatalf("waiting for %s: nothing within 40 s of fake time", what)
		return Snapshot{}
	}
	next("fake added", func(s Snapshot) bool { return s.Infrastructure["fake"] != nil })
	crash()
	crashedAt := clk.Now()
	s := next("fake removed", func(s Snapshot) bool { return s.Infrastructure["fake"] == nil })
	var ev Event
	for _, e := range s.Events {
		if e.Target == "fake" {
			ev = e
		}
	}
	if ev.Kind != EventRemoved || ev.Reason != ReasonNoAnswer {
		t.Fatalf("event %+v, want removed/no-answer", ev)
	}
	// The removal is dated last answer + NoAnswerTimeout (3×2 s + 0.5 s),
	// however late the loop noticed it; the last answer came before the
	// crash, to the last or the last but one browse round.
	lo, hi := src.cfg.NoAnswerTimeout-2*src.cfg.BrowseInterval, src.cfg.NoAnswerTimeout
	if d := ev.At.Sub(crashedAt); d < lo || d > hi {
		t.Fatalf("removed %v after the crash (fake time), want between %v and %v", d, lo, hi)
	}
	if s.At.Before(ev.At) {
		t.Fatalf("snapshot at %v, before its event at %v", s.At, ev.At)
	}
}

// The zeroconf rounds alone (passive listener off) find a machine, see its
// TXT change on a later round (a fresh Resolver per round), and lose it by
// the no-answer timeout when it stops answering: the integration with
// zeroconf cannot rot unnoticed behind the passive listener.
func TestBrowserZeroconfOnly(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddz").RerunTest(t)
		return
	}
	r := loResponder(openLo(t), "zc", `properties."mem"="1"`)
	crash := serveLo(t, r)

	_, out := runBrowser(t, BrowserConfig{
		noPassive: true, BrowseInterval: 500 * time.Millisecond, InitialWait: 700 * time.Millisecond, Debounce: 100 * time.Millisecond, ProbeInterval: -1,
	})

	wait := func(what string, ok func(Snapshot) bool) Snapshot {
		t.Helper()
		deadline := time.After(time.Minute)
		for {
			select {
			case s := <-out:
				if ok(s) {
					return s
				}
			case <-deadline:
				t.Fatalf("waiting for %s: nothing after a minute", what)
			}
		}
	}
	mem := func(s Snapshot) any {
		if tg := s.Infrastructure["zc"]; tg != nil {
			return tg.Properties["mem"]
		}
		return nil
	}
	wait("zc added", func(s Snapshot) bool { return mem(s) != nil })                      // through zeroconf: noPassive
	r.setTXT([]string{"txtvers=1", `properties."hostname"="zc"`, `properties."mem"="2"`}) // no announcement: only the next round sees it
	s := wait("zc changed", func(s Snapshot) bool { return fmt.Sprint(mem(s)) == "2" })
	if !hasKind(s, "zc", EventChanged) {
		t.Fatalf("events %+v, want changed", s.Events)
	}
	crash()
	s = wait("zc removed", func(s Snapshot) bool { return s.Infrastructure["zc"] == nil })
	for _, e := range s.Events {
		if e.Target == "zc" && (e.Kind != EventRemoved || e.Reason != ReasonNoAnswer) {
			t.Fatalf("event %+v, want removed/no-answer", e)
		}
	}
}

func hasKind(s Snapshot, target string, kind EventKind) bool {
	for _, e := range s.Events {
		if e.Target == target && e.Kind == kind {
			return true
		}
	}
	return false
}

// Entries from zeroconf are converted like packets of the passive listener
// (escaped instance labels, TXT escapes) and dropped when none of their
// addresses lies on a configured interface: zeroconf's wildcard socket also
// receives the answers of other interfaces.
func TestZeroconfEntryRecord(t *testing.T) {
	_, n, _ := net.ParseCIDR("10.9.8.0/24")
	z := &zeroconfRounds{log: zap.NewNop()}
	f := &linkFilter{nets: []*net.IPNet{n}}
	e := &zeroconf.ServiceEntry{HostName: "a.local.", Port: 22, TTL: 120,
		Text: []string{`properties."hostname"=\"a\"`}, AddrIPv4: []net.IP{net.IPv4(10, 9, 8, 7)}}
	e.Instance = `disnix-a\.b`
	r, ok := z.record(e, f)
	if !ok || r.instance != "disnix-a.b" || !r.hasTXT || r.txt[0] != `properties."hostname"="a"` || r.ttl != 120*time.Second || r.port != 22 {
		t.Fatalf("record %+v %v", r, ok)
	}
	e.AddrIPv4 = []net.IP{net.IPv4(192, 0, 2, 1)}
	if _, ok := z.record(e, f); ok {
		t.Fatal("entry from another interface accepted")
	}
	e.AddrIPv4, e.TTL, e.Text = []net.IP{net.IPv4(10, 9, 8, 7)}, 0, nil
	if _, ok := z.record(e, f); ok {
		t.Fatal("goodbye entry accepted")
	}
	e.TTL = 10
	if r, ok := z.record(e, f); !ok || r.hasTXT {
		t.Fatalf("entry without TXT: %+v %v", r, ok)
	}
	e.AddrIPv4 = []net.IP{net.IPv4(192, 0, 2, 1)}
	if _, ok := z.record(e, &linkFilter{anyAddr: true}); !ok {
		t.Fatal("interface without IPv4 address: entry dropped")
	}
	if got := instanceLabel("disnix-a.b c"); got != `disnix-a\.b\ c` {
		t.Fatalf("instanceLabel = %q", got)
	}
}

// A record that a newer one overtook on the other path (passive listener vs
// zeroconf) is not taken for a revert; one on the same passive path, or
// after the window, is.
func TestTXTCacheOvertaken(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ce := &txtCacheEntry{joined: "new", prev: "old", changed: t0}
	for _, c := range []struct {
		joined       string
		viaZeroconf  bool
		changedByZC  bool
		after        time.Duration
		wantOvertook bool
	}{
		{"old", true, false, 10 * time.Millisecond, true},
		{"old", false, true, 10 * time.Millisecond, true},
		{"old", false, false, 10 * time.Millisecond, false}, // passive path keeps packet order
		{"old", true, false, staleWindow, false},
		{"other", true, false, 10 * time.Millisecond, false},
	} {
		ce.viaZeroconf = c.changedByZC
		if got := ce.overtaken(c.joined, c.viaZeroconf, t0.Add(c.after)); got != c.wantOvertook {
			t.Errorf("%+v: overtaken = %v", c, got)
		}
	}
	if (*txtCacheEntry)(nil).overtaken("old", true, t0) || (&txtCacheEntry{joined: "x"}).overtaken("", true, t0) {
		t.Error("first record taken as overtaken")
	}
}

// zeroconf's socket is bound to the wildcard and Linux hands it the mDNS
// packets of every interface where some socket joined the group
// (IP_MULTICAST_ALL): announcements on another interface of the host reach
// it, and only the on-link filter keeps them out of a browser bound to lo.
func TestBrowserZeroconfOtherInterface(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddo").RerunTest(t)
		return
	}
	for _, args := range [][]string{
		{"link", "add", "ddo0", "type", "veth", "peer", "name", "ddo1"},
		{"link", "set", "ddo1", "up"},
		{"link", "set", "ddo0", "multicast", "on", "up"},
		{"addr", "add", "10.254.253.1/24", "dev", "ddo0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ifaces, err := ResolveInterfaces([]string{"ddo0"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := openMDNS(ifaces)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := &responder{conn: conn, instance: "disnix-other", host: "other.local.", port: 22, ttl: 120,
		txt: []string{"txtvers=1", `properties."hostname"="other"`}, ips: []net.IP{net.IPv4(10, 254, 253, 1)}}

	// The browser's debug log says when the on-link filter drops an entry.
	core, logs := observer.New(zap.DebugLevel)
	_, out := runBrowser(t, BrowserConfig{
		Logger: zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())), noPassive: true,
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond, ProbeInterval: -1,
	})

	// Announce on ddo0, while the browser runs rounds on lo, until the
	// filter has dropped one of its entries: no event says when zeroconf's
	// socket received one.
	var announceErr error
	testenv.Eventually(t, time.Minute, func() bool {
		if announceErr = r.announce(); announceErr != nil {
			return true
		}
		return logs.FilterMessage(logOffLink).Len() > 0
	}, "no announcement of ddo0 reached zeroconf's socket: the test did not exercise the on-link filter")
	if announceErr != nil {
		t.Fatal(announceErr)
	}
	for {
		select {
		case s := <-out:
			if s.Infrastructure["other"] != nil {
				t.Fatal("browser bound to lo reports a machine announced on ddo0")
			}
		default:
			return
		}
	}
}

// A machine that only probes (RFC 6762 §8: its proposed records ride in
// the queries' authority section) and never announces, like a publisher
// that lost its name, is not reported: zeroconf v1.0.0 reads those records
// as answers (a Lookup, those of any instance), and the browser holds such
// entries back. A terse machine (it leaves its TXT record out of its
// answers) appears while the prober probes: its lookup reads the probes.
func TestBrowserIgnoresProbes(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddq").RerunTest(t)
		return
	}
	conn := openLo(t)
	r := loResponder(conn, "prober")
	core, logs := observer.New(zap.DebugLevel)
	_, out := runBrowser(t, BrowserConfig{
		Logger:         zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())),
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond, ProbeInterval: -1,
	})
	// Probe until the browser has held back a zeroconf entry read from a
	// probe: no event says when a probe reached it.
	var probeErr error
	reported, terse := false, false
	drain := func() {
		for {
			select {
			case s := <-out:
				reported = reported || s.Infrastructure["prober"] != nil
			default:
				return
			}
		}
	}
	testenv.Eventually(t, time.Minute, func() bool {
		drain() // the terse machine's snapshots
		if probeErr = conn.send(r.probeQuery()); probeErr != nil {
			return true
		}
		if !terse {
			terse = true
			serveTerse(t, loResponder(openLo(t), "terse"))
		}
		return logs.FilterMessage(logHeldBack).Len() >= 1
	}, "the browser never held back an entry read from a probe")
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	if drain(); reported {
		t.Fatal("a machine that only probed is reported")
	}
	// It announces: now it is reported.
	if err := r.announce(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(time.Minute)
	for {
		select {
		case s := <-out:
			if s.Infrastructure["prober"] != nil {
				return
			}
		case <-deadline:
			t.Fatal("announced machine not reported")
		}
	}
}

// serveTerse makes r answer the browse query without its TXT record
// (allowed: additional records are optional), and a TXT query with it,
// until the test ends; it reports whether a TXT query came.
func serveTerse(t *testing.T, r *responder) *atomic.Bool {
	t.Helper()
	conn := r.conn
	ptr, srv, txt, addrs := r.records(120)
	inst := strings.ToLower(instanceFQDN(r.instance))
	var txtAsked atomic.Bool
	stop := make(chan struct{})
	in := make(chan inbound, 16)
	go conn.recv(in, stop, func(bool) bool { return true })
	go func() {
		for {
			select {
			case <-stop:
				return
			case p := <-in:
				if p.msg.Response {
					continue
				}
				resp := new(dns.Msg)
				resp.Response = true
				for _, q := range p.msg.Question {
					switch {
					case strings.EqualFold(q.Name, serviceName) && q.Qtype == dns.TypePTR:
						resp.Answer = append(resp.Answer, ptr)
						resp.Extra = append(append(resp.Extra, srv), addrs...) // no TXT
					case strings.ToLower(q.Name) == inst && q.Qtype == dns.TypeTXT:
						txtAsked.Store(true)
						resp.Answer = append(resp.Answer, txt, srv)
						resp.Extra = append(resp.Extra, addrs...)
					}
				}
				if len(resp.Answer) > 0 {
					_ = conn.send(resp)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop) })
	return &txtAsked
}

// A responder that leaves its TXT record out of its answers to the browse
// query (allowed: additional records are optional) is read through a
// per-instance lookup: a zeroconf Lookup asks for its SRV and TXT.
func TestBrowserLookupFetchesTXT(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddl").RerunTest(t)
		return
	}
	conn := openLo(t)
	txtAsked := serveTerse(t, loResponder(conn, "terse", `properties."mem"="7"`))

	_, out := runBrowser(t, BrowserConfig{
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond, ProbeInterval: -1,
	})
	deadline := time.After(time.Minute)
	for {
		select {
		case s := <-out:
			if tg := s.Infrastructure["terse"]; tg != nil {
				if fmt.Sprint(tg.Properties["mem"]) != "7" {
					t.Fatalf("terse: %v", tg.Properties)
				}
				if !txtAsked.Load() {
					t.Fatal("target found without a TXT question")
				}
				return
			}
		case <-deadline:
			t.Fatalf("terse not found (TXT asked: %v)", txtAsked.Load())
		}
	}
}

// openLo opens the mDNS sockets on lo (inside the test's namespace), closed
// at cleanup.
func openLo(t *testing.T) *mdnsConn {
	t.Helper()
	ifaces, err := ResolveInterfaces([]string{"lo"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := openMDNS(ifaces)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// loResponder is a responder on conn for the machine host at 127.0.0.1,
// with the given properties TXT strings after txtvers and the hostname.
func loResponder(conn *mdnsConn, host string, props ...string) *responder {
	txt := append([]string{"txtvers=1", `properties."hostname"="` + host + `"`}, props...)
	return &responder{conn: conn, instance: "disnix-" + host, host: host + ".local.", port: 22, ttl: 120,
		txt: txt, ips: []net.IP{net.IPv4(127, 0, 0, 1)}}
}

// serveLo makes r answer queries until the returned crash is called (or the
// test ends): the responder stops without a goodbye and its sockets close.
func serveLo(t *testing.T, r *responder) (crash func()) {
	t.Helper()
	stop := make(chan struct{})
	served := make(chan struct{})
	ready := make(chan error, 1)
	go func() { defer close(served); r.serve(stop, ready) }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	crash = func() {
		once.Do(func() {
			close(stop)
			r.conn.Close()
			<-served
		})
	}
	t.Cleanup(crash)
	return crash
}

// runBrowser runs a browser on lo with cfg (Interfaces and, unless set,
// Logger filled in) until the test ends, and returns it and its snapshots.
func runBrowser(t *testing.T, cfg BrowserConfig) (*MDNSSource, <-chan Snapshot) {
	t.Helper()
	cfg.Interfaces = []string{"lo"}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	src, err := NewMDNSSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Snapshot, 64)
	done := make(chan struct{})
	go func() { defer close(done); src.Run(ctx, out) }()
	t.Cleanup(func() { cancel(); <-done })
	return src, out
}
