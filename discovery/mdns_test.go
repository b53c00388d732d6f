package discovery

import (
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestRecordsOf(t *testing.T) {
	t.Parallel()
	inst := instanceFQDN("disnix-my host.x")
	if got, ok := instanceOf(inst); !ok || got != "disnix-my host.x" {
		t.Fatalf("instanceOf(%q) = %q, %v", inst, got, ok)
	}
	hdr := func(name string, typ uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
	}
	msg := &dns.Msg{}
	msg.Response = true
	msg.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(serviceName, dns.TypePTR, 120), Ptr: inst},
		&dns.PTR{Hdr: hdr("_other._tcp.local.", dns.TypePTR, 120), Ptr: "x._other._tcp.local."},
	}
	msg.Extra = []dns.RR{
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120), Port: 22, Target: "h.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 4500), Txt: []string{txtToWire(`properties."hostname"="a\"b"`)}},
		&dns.A{Hdr: hdr("h.local.", dns.TypeA, 120), A: net.IPv4(10, 0, 0, 1)},
	}
	// Through the wire, so miekg's escaping is exercised.
	buf, err := msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(buf); err != nil {
		t.Fatal(err)
	}
	recs := recordsOf(&back)
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	r := recs[0]
	if r.instance != "disnix-my host.x" || r.goodbye || !r.hasTXT || r.ttl != 120*time.Second || r.port != 22 {
		t.Fatalf("record %+v", r)
	}
	if !reflect.DeepEqual(r.txt, []string{`properties."hostname"="a\"b"`}) {
		t.Fatalf("txt %q", r.txt)
	}
	bye := (&responder{instance: "disnix-a", host: "a.local.", port: 22, ttl: 120, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}).goodbyeMsg()
	recs = recordsOf(bye)
	if len(recs) != 1 || !recs[0].goodbye || recs[0].instance != "disnix-a" {
		t.Fatalf("goodbye read as %+v", recs)
	}
	q := browseQuery([]string{"disnix-a"})
	if len(q.Question) != 3 || q.Question[0].Qtype != dns.TypePTR || q.Question[2].Qtype != dns.TypeTXT {
		t.Fatalf("query %v", q.Question)
	}
}

func TestTXTWireEscaping(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`a\b`, `"q"`, "x\x01y", `\\065`} {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: "x.local.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{txtToWire(s)}}
		buf := make([]byte, 512)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		back, _, err := dns.UnpackRR(buf[:n], 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := txtFromWire(back.(*dns.TXT).Txt[0]); got != s {
			t.Errorf("%q came back as %q", s, got)
		}
	}
}

// FuzzPacket: any packet on the wire goes through the browser's reading
// path (miekg unpack, grouping by instance, TXT parsing) without a panic.
func FuzzPacket(f *testing.F) {
	r := &responder{instance: "disnix-test1", host: "test1.local.", port: 22, ttl: 120,
		txt: []string{"txtvers=1", `properties."hostname"="test1"`, `properties."l"=[ 1 "a" ]`}, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}
	ptr, srv, txt, addrs := r.records(120)
	for _, m := range []*dns.Msg{r.goodbyeMsg(), unsolicited(append([]dns.RR{ptr, srv, txt}, addrs...)...), browseQuery([]string{"disnix-x"}), r.probeQuery()} {
		buf, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var msg dns.Msg
		if err := msg.Unpack(pkt); err != nil {
			return
		}
		for _, rec := range recordsOf(&msg) {
			if rec.hasTXT {
				ann, _, err := ParseTXT(rec.txt, hostnameFromInstance(rec.instance))
				if err == nil {
					_ = ann.Verify(ann.Target, nil)
				}
			}
		}
		_ = queriedInstances(&msg)
		_, _ = r.answer(&msg, 5353)
		_ = r.conflict(&msg)
	})
}

// browseQuery is the query a DNS-SD browser sends (the browser's own
// queries now come from zeroconf): a PTR question for the service's
// instances, plus SRV and TXT questions for instances (per-instance
// lookups), without known answers. The responder and fuzz tests use it.
func browseQuery(lookups []string) *dns.Msg {
	m := new(dns.Msg)
	m.Id = 0
	m.RecursionDesired = false
	m.Question = append(m.Question, dns.Question{Name: serviceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	for _, inst := range lookups {
		name := instanceFQDN(inst)
		m.Question = append(m.Question,
			dns.Question{Name: name, Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
			dns.Question{Name: name, Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
	}
	return m
}

// A probe names its instance through its proposed records, a query through
// its known answers; a response names nothing here.
func TestQueriedInstances(t *testing.T) {
	r := &responder{instance: "disnix-a b", host: "a.local.", port: 22, ttl: 120,
		txt: []string{"txtvers=1"}, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}
	if got := queriedInstances(r.probeQuery()); len(got) != 1 || got[0] != "disnix-a b" {
		t.Fatalf("probe: %q", got)
	}
	ptr, _, _, _ := r.records(120)
	q := browseQuery(nil)
	q.Answer = []dns.RR{ptr}
	if got := queriedInstances(q); len(got) != 1 || got[0] != "disnix-a b" {
		t.Fatalf("known answer: %q", got)
	}
	if got := queriedInstances(r.goodbyeMsg()); got != nil {
		t.Fatalf("response: %q", got)
	}
}
