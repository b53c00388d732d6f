package discovery

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// responder answers mDNS queries for one service instance on explicit
// interfaces and sends its announcements and goodbyes (RFC 6762 §6, §8.3,
// §10.1). It replaces zeroconf's Server, whose SetText and TTL race with its
// own responder goroutine, and which sends a single goodbye.
type responder struct {
	conn *mdnsConn

	mu       sync.Mutex
	instance string // unescaped label, "disnix-test1"
	host     string // "test1.local."
	port     int
	ttl      uint32
	txt      []string // raw strings
	ips      []net.IP
}

const qClassUnicast = 1 << 15 // QU bit of a question, cache-flush bit of a record

func (r *responder) hdr(name string, typ uint16, ttl uint32, unique bool) dns.RR_Header {
	class := uint16(dns.ClassINET)
	if unique {
		class |= qClassUnicast
	}
	return dns.RR_Header{Name: name, Rrtype: typ, Class: class, Ttl: ttl}
}

// records returns the PTR, SRV, TXT and address records with ttl. Callers
// hold mu.
func (r *responder) records(ttl uint32) (ptr, srv, txt dns.RR, addrs []dns.RR) {
	inst := instanceFQDN(r.instance)
	ptr = &dns.PTR{Hdr: r.hdr(serviceName, dns.TypePTR, ttl, false), Ptr: inst}
	srv = &dns.SRV{Hdr: r.hdr(inst, dns.TypeSRV, min(ttl, 120), true), Port: uint16(r.port), Target: r.host}
	txt = &dns.TXT{Hdr: r.hdr(inst, dns.TypeTXT, ttl, true), Txt: wireTXT(r.txt)}
	for _, ip := range r.ips {
		if v4 := ip.To4(); v4 != nil {
			addrs = append(addrs, &dns.A{Hdr: r.hdr(r.host, dns.TypeA, min(ttl, 120), true), A: v4})
		} else {
			addrs = append(addrs, &dns.AAAA{Hdr: r.hdr(r.host, dns.TypeAAAA, min(ttl, 120), true), AAAA: ip})
		}
	}
	return ptr, srv, txt, addrs
}

func unsolicited(answers ...dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	m.Authoritative = true
	m.Answer = answers
	return m
}

// announce multicasts every record (cache-flush set on the unique ones).
func (r *responder) announce() error {
	r.mu.Lock()
	ptr, srv, txt, addrs := r.records(r.ttl)
	r.mu.Unlock()
	return r.conn.send(unsolicited(append([]dns.RR{ptr, srv, txt}, addrs...)...))
}

// announceTXT multicasts the TXT record alone, after a change.
func (r *responder) announceTXT() error {
	r.mu.Lock()
	_, _, txt, _ := r.records(r.ttl)
	r.mu.Unlock()
	return r.conn.send(unsolicited(txt))
}

// goodbye multicasts every record with TTL 0.
func (r *responder) goodbye() error { return r.conn.send(r.goodbyeMsg()) }

func (r *responder) goodbyeMsg() *dns.Msg {
	r.mu.Lock()
	ptr, srv, txt, addrs := r.records(0)
	r.mu.Unlock()
	return unsolicited(append([]dns.RR{ptr, srv, txt}, addrs...)...)
}

// setTXT replaces the TXT strings.
func (r *responder) setTXT(txt []string) {
	r.mu.Lock()
	r.txt = append([]string(nil), txt...)
	r.mu.Unlock()
}

// answer builds the response to a query (nil when nothing is asked of us)
// and says whether it must go by unicast.
func (r *responder) answer(q *dns.Msg, srcPort int) (*dns.Msg, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ptr, srv, txt, addrs := r.records(r.ttl)
	inst := strings.ToLower(instanceFQDN(r.instance))
	host := strings.ToLower(r.host)
	var ans, extra []dns.RR
	have := map[dns.RR]bool{}
	add := func(list *[]dns.RR, rrs ...dns.RR) {
		for _, rr := range rrs {
			if !have[rr] {
				have[rr] = true
				*list = append(*list, rr)
			}
		}
	}
	unicast := true
	for _, qu := range q.Question {
		if qu.Qclass&qClassUnicast == 0 {
			unicast = false
		}
		name := strings.ToLower(qu.Name)
		any := qu.Qtype == dns.TypeANY
		switch {
		case name == serviceName && (qu.Qtype == dns.TypePTR || any):
			if knownAnswer(q, ptr) {
				continue
			}
			add(&ans, ptr)
			add(&extra, srv, txt)
			add(&extra, addrs...)
		case name == inst:
			if qu.Qtype == dns.TypeSRV || any {
				add(&ans, srv)
				add(&extra, addrs...)
			}
			if qu.Qtype == dns.TypeTXT || any {
				add(&ans, txt)
			}
		case name == host && (qu.Qtype == dns.TypeA || qu.Qtype == dns.TypeAAAA || any):
			for _, a := range addrs {
				if any || a.Header().Rrtype == qu.Qtype {
					add(&ans, a)
				}
			}
		case name == "_services._dns-sd._udp.local." && (qu.Qtype == dns.TypePTR || any):
			add(&ans, &dns.PTR{Hdr: r.hdr(name, dns.TypePTR, r.ttl, false), Ptr: serviceName})
		}
	}
	if len(ans) == 0 {
		return nil, false
	}
	for i := 0; i < len(extra); i++ { // additional records already in the answer are dropped
		if inAnswer(ans, extra[i]) {
			extra = append(extra[:i], extra[i+1:]...)
			i--
		}
	}
	resp := new(dns.Msg)
	resp.Response = true
	resp.Authoritative = true
	resp.Answer, resp.Extra = ans, extra
	legacy := srcPort != 5353
	if legacy {
		// RFC 6762 §6.7: a legacy resolver gets a conventional unicast reply.
		resp.Id = q.Id
		resp.Question = q.Question
	}
	// QU questions are answered by multicast too: several sockets share
	// port 5353 on a host (browser, publishers, Avahi) and a unicast reply
	// reaches only one of them. RFC 6762 §5.4 allows it.
	_ = unicast
	return resp, legacy
}

func inAnswer(ans []dns.RR, rr dns.RR) bool {
	for _, a := range ans {
		if a == rr {
			return true
		}
	}
	return false
}

// knownAnswer implements known-answer suppression (RFC 6762 §7.1): the
// querier already has our PTR with at least half its TTL left.
func knownAnswer(q *dns.Msg, ptr dns.RR) bool {
	want := ptr.(*dns.PTR)
	for _, k := range q.Answer {
		p, ok := k.(*dns.PTR)
		if ok && strings.EqualFold(p.Hdr.Name, want.Hdr.Name) && strings.EqualFold(p.Ptr, want.Ptr) && p.Hdr.Ttl >= want.Hdr.Ttl/2 {
			return true
		}
	}
	return false
}

// probeQuery asks whether anybody else holds our instance or host name
// (RFC 6762 §8.1): QU questions of type ANY with our proposed records in the
// authority section.
func (r *responder) probeQuery() *dns.Msg {
	r.mu.Lock()
	_, srv, txt, addrs := r.records(r.ttl)
	inst, host := instanceFQDN(r.instance), r.host
	r.mu.Unlock()
	m := new(dns.Msg)
	m.Question = []dns.Question{
		{Name: inst, Qtype: dns.TypeANY, Qclass: dns.ClassINET | qClassUnicast},
		{Name: host, Qtype: dns.TypeANY, Qclass: dns.ClassINET | qClassUnicast},
	}
	m.Ns = append([]dns.RR{srv, txt}, addrs...)
	return m
}

// conflict returns a description when a response carries records for our
// instance or host name that are not ours (another machine claims them).
func (r *responder) conflict(resp *dns.Msg) string {
	r.mu.Lock()
	_, srv, txt, addrs := r.records(r.ttl)
	inst, host := strings.ToLower(instanceFQDN(r.instance)), strings.ToLower(r.host)
	r.mu.Unlock()
	same := func(a, b dns.RR) bool {
		switch x := a.(type) {
		case *dns.SRV:
			y, ok := b.(*dns.SRV)
			return ok && x.Port == y.Port && strings.EqualFold(x.Target, y.Target)
		case *dns.TXT:
			y, ok := b.(*dns.TXT)
			if !ok || len(x.Txt) != len(y.Txt) {
				return false
			}
			for i := range x.Txt {
				if txtFromWire(x.Txt[i]) != txtFromWire(y.Txt[i]) {
					return false
				}
			}
			return true
		case *dns.A:
			y, ok := b.(*dns.A)
			return ok && x.A.Equal(y.A)
		case *dns.AAAA:
			y, ok := b.(*dns.AAAA)
			return ok && x.AAAA.Equal(y.AAAA)
		}
		return false
	}
	ours := func(rr dns.RR, candidates ...dns.RR) bool {
		for _, c := range candidates {
			if same(rr, c) {
				return true
			}
		}
		return false
	}
	for _, rr := range append(append([]dns.RR(nil), resp.Answer...), resp.Extra...) {
		name := strings.ToLower(rr.Header().Name)
		if rr.Header().Ttl == 0 {
			continue // a goodbye, e.g. from our own previous run
		}
		switch {
		case name == inst && (rr.Header().Rrtype == dns.TypeSRV || rr.Header().Rrtype == dns.TypeTXT):
			if !ours(rr, srv, txt) {
				return fmt.Sprintf("instance %s is announced by another machine (%s)", r.instance, rr)
			}
		case name == host && (rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA):
			if !ours(rr, addrs...) {
				return fmt.Sprintf("host name %s is announced by another machine (%s)", r.host, rr)
			}
		}
	}
	return ""
}

// probeTime is how long probing lasts: three probes 250 ms apart plus the
// time for an answer to the last one.
const probeTime = 750 * time.Millisecond

// serve probes for our names (RFC 6762 §8.1; a conflict is sent on ready
// and serve returns), then announces twice, one second apart (§8.3), and
// answers queries until done is closed. ready receives nil once probing
// succeeded.
func (r *responder) serve(done <-chan struct{}, ready chan<- error) {
	in := make(chan inbound, 32)
	go r.conn.recv(in, done, true)
	probes := 0
	tick := time.NewTimer(0)
	defer tick.Stop()
	probing := true
	for {
		select {
		case <-done:
			if probing {
				ready <- errors.New("stopped while probing")
			}
			return
		case <-tick.C:
			switch {
			case probing && probes < 3:
				_ = r.conn.send(r.probeQuery())
				probes++
				tick.Reset(probeTime / 3)
			case probing:
				probing = false
				ready <- nil
				_ = r.announce()
				tick.Reset(time.Second)
				probes = 4 // one more announcement
			case probes == 4:
				_ = r.announce()
				probes++
			}
		case p := <-in:
			if p.msg.Response {
				if c := r.conflict(p.msg); c != "" {
					if probing {
						ready <- errors.New(c)
						return
					}
				}
				continue
			}
			if probing || p.msg.Opcode != dns.OpcodeQuery {
				continue
			}
			port := 5353
			if p.src != nil {
				port = p.src.Port
			}
			resp, unicast := r.answer(p.msg, port)
			if resp == nil {
				continue
			}
			if unicast && p.src != nil {
				_ = r.conn.sendTo(resp, p.ifIndex, p.src)
			} else {
				_ = r.conn.sendTo(resp, p.ifIndex, nil)
			}
		}
	}
}
