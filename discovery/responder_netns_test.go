package discovery_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/netns"
)

// responderPeers is how many publishers answer the querier of
// TestResponderSharedAnswers.
const responderPeers = 4

// TestResponderSharedAnswers checks the responder's answers to a browse
// query on a real network (publisher processes in their own namespaces, a
// querier in another one) against RFC 6762: an answer holding our shared PTR
// record waits at least 20 ms (§6), so the publishers do not all answer in
// the same instant; a publisher whose PTR the query lists as a known answer
// stays silent (§7.1), the others answer.
func TestResponderSharedAnswers(t *testing.T) {
	if netns.Inside(t) {
		querySharedAnswers(t)
		return
	}
	bin := commands(t)
	nw := netns.NewNetworkT(t, "ddr", responderPeers+1)
	dir := t.TempDir()
	for i, nd := range nw.Nodes[:responderPeers] {
		props := filepath.Join(dir, fmt.Sprintf("test%d.json", i+1))
		writeJSON(t, props, map[string]any{"properties": map[string]any{"hostname": fmt.Sprintf("test%d", i+1)}})
		startPublisher(t, nd, bin, props)
	}
	nw.Nodes[responderPeers].RerunTest(t)
}

// querier is a raw mDNS socket on eth0 of the querier's namespace.
type querier struct {
	t  *testing.T
	pc *ipv4.PacketConn
}

type packet struct {
	msg *dns.Msg
	src string // the sender's IPv4 address
	at  time.Time
}

func openQuerier(t *testing.T) *querier {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	udp, err := net.ListenUDP("udp4", group)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	pc := ipv4.NewPacketConn(udp)
	if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: group.IP}); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	return &querier{t: t, pc: pc}
}

func (q *querier) send(m *dns.Msg) time.Time {
	q.t.Helper()
	buf, err := m.Pack()
	if err != nil {
		q.t.Fatal(err)
	}
	at := time.Now()
	if _, err := q.pc.WriteTo(buf, nil, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
		q.t.Fatal(err)
	}
	return at
}

// next returns the next response received before deadline, or nil.
func (q *querier) next(deadline time.Time) *packet {
	buf := make([]byte, 9000)
	for {
		_ = q.pc.SetReadDeadline(deadline)
		n, _, src, err := q.pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			q.t.Fatal(err)
		}
		at := time.Now()
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) != nil || !m.Response {
			continue
		}
		return &packet{msg: m, src: src.(*net.UDPAddr).IP.String(), at: at}
	}
}

func question(name string, typ uint16) *dns.Msg {
	m := new(dns.Msg)
	m.Question = []dns.Question{{Name: name, Qtype: typ, Qclass: dns.ClassINET}}
	return m
}

// disnixPTRs returns the PTR records of our service type in a response.
func disnixPTRs(m *dns.Msg) []*dns.PTR {
	var out []*dns.PTR
	for _, rr := range m.Answer {
		if p, ok := rr.(*dns.PTR); ok && strings.EqualFold(p.Hdr.Name, discovery.ServiceType+".local.") {
			out = append(out, p)
		}
	}
	return out
}

func querySharedAnswers(t *testing.T) {
	q := openQuerier(t)
	deadline := time.Now().Add(eventDeadline)

	// Wait until every publisher answers: ask each one's SRV record (unique
	// records are answered at once) until all have, asking again each
	// time an answer arrives or 250 ms pass (probing takes 750 ms).
	up := map[string]bool{}
	for len(up) < responderPeers {
		for i := 1; i <= responderPeers; i++ {
			if !up[fmt.Sprintf("test%d", i)] {
				q.send(question(fmt.Sprintf("%stest%d.%s.local.", discovery.InstancePrefix, i, discovery.ServiceType), dns.TypeSRV))
			}
		}
		p := q.next(time.Now().Add(250 * time.Millisecond))
		if time.Now().After(deadline) {
			t.Fatalf("publishers answering: %v after %v", up, eventDeadline)
		}
		if p == nil {
			continue
		}
		for _, rr := range p.msg.Answer {
			if srv, ok := rr.(*dns.SRV); ok {
				up[strings.TrimSuffix(srv.Target, ".local.")] = true
			}
		}
	}

	// A browse query: every publisher answers with its PTR, none sooner
	// than 20 ms after the query.
	browse := question(discovery.ServiceType+".local.", dns.TypePTR)
	sent := q.send(browse)
	first := map[string]*packet{} // instance -> its answer
	owner := map[string]string{}  // source address -> instance
	ptrs := map[string]*dns.PTR{} // instance -> its PTR record
	for len(first) < responderPeers {
		p := q.next(deadline)
		if p == nil {
			t.Fatalf("answers to a browse query: %d of %d", len(first), responderPeers)
		}
		for _, ptr := range disnixPTRs(p.msg) {
			inst := ptr.Ptr
			if first[inst] == nil {
				first[inst], owner[p.src], ptrs[inst] = p, inst, ptr
			}
		}
	}
	var spread []time.Time
	for inst, p := range first {
		d := p.at.Sub(sent)
		t.Logf("%s answered after %v", inst, d)
		if d < 20*time.Millisecond {
			t.Errorf("%s answered the shared PTR %v after the query, want a random delay of at least 20 ms (RFC 6762 §6)", inst, d)
		}
		spread = append(spread, p.at)
	}
	if !slices.ContainsFunc(spread, func(at time.Time) bool { return !at.Equal(spread[0]) }) {
		t.Errorf("all %d answers arrived at the same instant", responderPeers)
	}

	// Known answers: the query lists the PTRs of test1 and test2, as a
	// browser that already has them does. Only test3 and test4 answer. A
	// second query, for the service types (a shared record every publisher
	// answers, after a delay), marks the end: each publisher's answers go
	// out in order, so once every publisher answered it, an answer to the
	// first query would have arrived already.
	known := question(discovery.ServiceType+".local.", dns.TypePTR)
	suppressed := map[string]bool{}
	for _, h := range []string{"test1", "test2"} {
		inst := discovery.InstancePrefix + h + "." + discovery.ServiceType + ".local."
		ptr := ptrs[inst]
		if ptr == nil {
			t.Fatalf("no PTR of %s in %v", inst, ptrs)
		}
		known.Answer = append(known.Answer, ptr)
		suppressed[inst] = true
	}
	q.send(known)
	q.send(question("_services._dns-sd._udp.local.", dns.TypePTR))
	answered := map[string]bool{}
	marked := map[string]bool{}
	for len(marked) < responderPeers {
		p := q.next(deadline)
		if p == nil {
			t.Fatalf("answers to the service-type query: %v of %d", marked, responderPeers)
		}
		for _, ptr := range disnixPTRs(p.msg) {
			answered[ptr.Ptr] = true
		}
		for _, rr := range p.msg.Answer {
			if ptr, ok := rr.(*dns.PTR); ok && ptr.Hdr.Name == "_services._dns-sd._udp.local." {
				marked[owner[p.src]] = true
			}
		}
	}
	for inst := range ptrs {
		switch {
		case suppressed[inst] && answered[inst]:
			t.Errorf("%s answered although the query listed its PTR as a known answer (RFC 6762 §7.1)", inst)
		case !suppressed[inst] && !answered[inst]:
			t.Errorf("%s did not answer a query that did not list it", inst)
		}
	}
}
