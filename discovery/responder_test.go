package discovery

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

func TestResponderAnswer(t *testing.T) {
	t.Parallel()
	r := &responder{instance: "disnix-test1", host: "test1.local.", port: 22, ttl: 120,
		txt: []string{`properties."hostname"="test1"`}, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}
	inst := instanceFQDN("disnix-test1")
	q := func(name string, typ uint16, qu bool) *dns.Msg {
		m := new(dns.Msg)
		m.Id = 7
		class := uint16(dns.ClassINET)
		if qu {
			class |= qClassUnicast
		}
		m.Question = []dns.Question{{Name: name, Qtype: typ, Qclass: class}}
		return m
	}
	known := q(serviceName, dns.TypePTR, false)
	known.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: serviceName, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 100}, Ptr: inst}}
	stale := q(serviceName, dns.TypePTR, false)
	stale.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: serviceName, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 10}, Ptr: inst}}
	knownSRV := q(inst, dns.TypeSRV, false)
	knownSRV.Answer = []dns.RR{&dns.SRV{Hdr: dns.RR_Header{Name: inst, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Port: 22, Target: "TEST1.local."}}
	for _, c := range []struct {
		name           string
		q              *dns.Msg
		port           int
		answers, extra int
		unicast        bool
	}{
		{"browse", q(serviceName, dns.TypePTR, false), 5353, 1, 3, false},
		{"browse, other case", q("_DISNIX._tcp.local.", dns.TypePTR, false), 5353, 1, 3, false},
		{"known answer suppressed", known, 5353, 0, 0, false},
		{"stale known answer refreshed", stale, 5353, 1, 3, false},
		{"known SRV suppressed", knownSRV, 5353, 0, 0, false},
		{"instance SRV", q(inst, dns.TypeSRV, false), 5353, 1, 1, false},
		{"instance TXT, QU (multicast all the same)", q(inst, dns.TypeTXT, true), 5353, 1, 0, false},
		{"instance ANY", q(inst, dns.TypeANY, false), 5353, 2, 1, false},
		{"host A", q("test1.local.", dns.TypeA, false), 5353, 1, 0, false},
		{"legacy querier", q(serviceName, dns.TypePTR, false), 40000, 1, 3, true},
		{"service enumeration", q("_services._dns-sd._udp.local.", dns.TypePTR, false), 5353, 1, 0, false},
		{"someone else", q("_http._tcp.local.", dns.TypePTR, false), 5353, 0, 0, false},
	} {
		resp, unicast := r.answer(c.q, c.port)
		if c.answers == 0 {
			if resp != nil {
				t.Errorf("%s: unexpected answer %v", c.name, resp)
			}
			continue
		}
		if resp == nil || len(resp.Answer) != c.answers || len(resp.Extra) != c.extra || unicast != c.unicast {
			t.Errorf("%s: got %v (unicast %v)", c.name, resp, unicast)
			continue
		}
		if c.port != 5353 && (resp.Id != 7 || len(resp.Question) != 1) {
			t.Errorf("%s: legacy reply must echo id and question", c.name)
		}
		if _, err := resp.Pack(); err != nil {
			t.Errorf("%s: pack: %v", c.name, err)
		}
	}
	bye := r.goodbyeMsg()
	for _, rr := range bye.Answer {
		if rr.Header().Ttl != 0 {
			t.Errorf("goodbye record with TTL %d: %v", rr.Header().Ttl, rr)
		}
	}
}

// Answers delayed together are aggregated: each record once, additional
// records that became answers dropped.
func TestResponderMerge(t *testing.T) {
	t.Parallel()
	r := &responder{instance: "disnix-test1", host: "test1.local.", port: 22, ttl: 120, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}
	browse := new(dns.Msg)
	browse.Question = []dns.Question{{Name: serviceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	txt := new(dns.Msg)
	txt.Question = []dns.Question{{Name: instanceFQDN("disnix-test1"), Qtype: dns.TypeTXT, Qclass: dns.ClassINET}}
	pending, _ := r.answer(browse, 5353)
	again, _ := r.answer(browse, 5353)
	other, _ := r.answer(txt, 5353)
	if !shared(pending) || shared(other) {
		t.Fatalf("shared: PTR answer %v, TXT answer %v", shared(pending), shared(other))
	}
	merge(pending, again)
	merge(pending, other)
	if len(pending.Answer) != 2 || len(pending.Extra) != 2 { // PTR, TXT; SRV, A
		t.Fatalf("merged answer:\n%v", pending)
	}
}
