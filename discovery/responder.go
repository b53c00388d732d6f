package discovery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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

// answer builds the response to a query (nil when nothing is asked of us,
// or when the query's known-answer section already holds everything we
// would say) and says whether it must go by unicast.
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
			// RFC 6762 §7.1: a record the querier lists as a known answer
			// with at least half our TTL left is not sent again.
			if !have[rr] && !knownAnswer(q, rr) {
				have[rr] = true
				*list = append(*list, rr)
			}
		}
	}
	for _, qu := range q.Question {
		name := strings.ToLower(qu.Name)
		any := qu.Qtype == dns.TypeANY
		switch {
		case name == serviceName && (qu.Qtype == dns.TypePTR || any):
			if knownAnswer(q, ptr) {
				continue // the additional records go with the PTR only
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
	extra = withoutDuplicates(ans, extra)
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
	return resp, legacy
}

// withoutDuplicates drops from extra the records already in ans or earlier
// in extra.
func withoutDuplicates(ans, extra []dns.RR) []dns.RR {
	out := extra[:0]
	for i, rr := range extra {
		if !containsRecord(ans, rr) && !containsRecord(extra[:i], rr) {
			out = append(out, rr)
		}
	}
	return out
}

func containsRecord(list []dns.RR, rr dns.RR) bool {
	for _, x := range list {
		if sameRecord(x, rr) {
			return true
		}
	}
	return false
}

// sameRecord reports whether a and b are the same record: name, type and
// data, whatever their TTL and cache-flush bit.
func sameRecord(a, b dns.RR) bool {
	ha, hb := *a.Header(), *b.Header()
	if ha.Rrtype != hb.Rrtype || !strings.EqualFold(ha.Name, hb.Name) {
		return false
	}
	if pa, ok := a.(*dns.PTR); ok {
		// Cheap for a query that lists a hundred PTR records as known
		// answers, which every machine reads on every browse round.
		pb, ok := b.(*dns.PTR)
		return ok && strings.EqualFold(pa.Ptr, pb.Ptr)
	}
	ca, cb := dns.Copy(a), dns.Copy(b)
	ca.Header().Class &^= qClassUnicast
	cb.Header().Class &^= qClassUnicast
	ca.Header().Name, cb.Header().Name = strings.ToLower(ha.Name), strings.ToLower(ha.Name)
	return dns.IsDuplicate(ca, cb)
}

// knownAnswer implements known-answer suppression (RFC 6762 §7.1): the
// querier already lists rr with at least half its TTL left.
func knownAnswer(q *dns.Msg, rr dns.RR) bool {
	for _, k := range q.Answer {
		if k.Header().Ttl >= rr.Header().Ttl/2 && sameRecord(k, rr) {
			return true
		}
	}
	return false
}

// shared reports whether a response holds a shared record (a PTR, not
// unique to this machine): other responders may answer the same query, so
// the answer waits a random 20–120 ms (RFC 6762 §6).
func shared(resp *dns.Msg) bool {
	for _, rr := range resp.Answer {
		if rr.Header().Class&qClassUnicast == 0 {
			return true
		}
	}
	return false
}

// refreshTXT replaces the TXT record in a delayed answer by the current
// one: the TXT may have changed (and been announced) while the answer
// waited, and the old one must not follow the announcement.
func (r *responder) refreshTXT(resp *dns.Msg) {
	r.mu.Lock()
	_, _, txt, _ := r.records(r.ttl)
	r.mu.Unlock()
	for _, sec := range [][]dns.RR{resp.Answer, resp.Extra} {
		for i, rr := range sec {
			if _, ok := rr.(*dns.TXT); ok && strings.EqualFold(rr.Header().Name, txt.Header().Name) {
				sec[i] = txt
			}
		}
	}
}

// Response delay for shared records (RFC 6762 §6): uniformly random in
// [sharedDelayMin, sharedDelayMin+sharedDelaySpan).
const (
	sharedDelayMin  = 20 * time.Millisecond
	sharedDelaySpan = 100 * time.Millisecond
)

func sharedDelay() time.Duration { return sharedDelayMin + rand.N(sharedDelaySpan) }

// merge adds the records of resp that pending lacks (aggregation, RFC 6762
// §6.4).
func merge(pending, resp *dns.Msg) {
	for _, rr := range resp.Answer {
		if !containsRecord(pending.Answer, rr) {
			pending.Answer = append(pending.Answer, rr)
		}
	}
	pending.Extra = withoutDuplicates(pending.Answer, append(pending.Extra, resp.Extra...))
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
// succeeded. Answers holding only unique records go at once; answers with a
// shared record (our PTR) wait a random 20–120 ms, and the answers to the
// queries that arrive meanwhile on that interface go in the same message
// (§6).
func (r *responder) serve(done <-chan struct{}, ready chan<- error) {
	in := make(chan inbound, 32)
	var listening atomic.Bool // responses matter while probing only
	listening.Store(true)
	go r.conn.recv(in, done, func(response bool) bool { return !response || listening.Load() })
	probes := 0
	tick := time.NewTimer(0)
	defer tick.Stop()
	probing := true
	pending := map[int]*dns.Msg{} // delayed multicast answers by interface
	fire := make(chan int)        // an interface whose delayed answer is due
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
				listening.Store(false)
				ready <- nil
				_ = r.announce()
				tick.Reset(time.Second)
				probes = 4 // one more announcement
			case probes == 4:
				_ = r.announce()
				probes++
			}
		case ifIndex := <-fire:
			if resp := pending[ifIndex]; resp != nil {
				delete(pending, ifIndex)
				r.refreshTXT(resp)
				_ = r.conn.sendTo(resp, ifIndex, nil)
			}
		case p := <-in:
			if p.msg.Response {
				if c := r.conflict(p.msg); probing && c != "" {
					ready <- errors.New(c)
					return
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
			switch {
			case resp == nil:
			case unicast && p.src != nil:
				_ = r.conn.sendTo(resp, p.ifIndex, p.src)
			case !shared(resp):
				_ = r.conn.sendTo(resp, p.ifIndex, nil)
			case pending[p.ifIndex] != nil:
				merge(pending[p.ifIndex], resp)
			default:
				pending[p.ifIndex] = resp
				ifIndex := p.ifIndex
				time.AfterFunc(sharedDelay(), func() {
					select {
					case fire <- ifIndex:
					case <-done:
					}
				})
			}
		}
	}
}
