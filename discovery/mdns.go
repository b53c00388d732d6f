package discovery

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// ServiceType is the DNS-SD service type machines announce.
const ServiceType = "_disnix._tcp"

// InstancePrefix starts every instance name: "disnix-<hostname>".
const InstancePrefix = "disnix-"

const (
	mdnsDomain  = "local."
	serviceName = ServiceType + "." + mdnsDomain // "_disnix._tcp.local."
)

var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// ResolveInterfaces looks up interfaces by name. An empty list is an error:
// mDNS is always bound to interfaces named by the user.
func ResolveInterfaces(names []string) ([]net.Interface, error) {
	if len(names) == 0 {
		return nil, errors.New("no network interface given: name the interfaces to announce/browse on (--interface)")
	}
	out := make([]net.Interface, 0, len(names))
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", n, err)
		}
		if ifi.Flags&net.FlagMulticast == 0 {
			return nil, fmt.Errorf("interface %s has multicast off (try: ip link set %s multicast on)", n, n)
		}
		out = append(out, *ifi)
	}
	return out, nil
}

// mdnsReadBuffer is the receive buffer asked for an mDNS socket. The
// default (about 208 KB, some 90 packets as the kernel counts them) is
// overflowed when a hundred machines answer one query within RFC 6762's
// 120 ms while the reader waits for a busy CPU.
const mdnsReadBuffer = 1 << 20

// mdnsConn is a multicast DNS socket joined on explicit interfaces. It
// receives every mDNS packet on those interfaces (answers to anybody's
// queries, unsolicited announcements and goodbyes), which the zeroconf
// library's browser hides.
type mdnsConn struct {
	pc     *ipv4.PacketConn
	ifaces []net.Interface
	index  map[int]bool
}

func openMDNS(ifaces []net.Interface) (*mdnsConn, error) {
	// Go binds a multicast address to the wildcard with SO_REUSEADDR, so
	// this socket shares port 5353 with a publisher or Avahi on the host.
	udp, err := net.ListenUDP("udp4", mdnsGroup)
	if err != nil {
		return nil, fmt.Errorf("listen mDNS: %w", err)
	}
	// Best effort: the kernel caps the size at net.core.rmem_max.
	_ = udp.SetReadBuffer(mdnsReadBuffer)
	pc := ipv4.NewPacketConn(udp)
	if err := pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		udp.Close()
		return nil, fmt.Errorf("mDNS control messages: %w", err)
	}
	_ = pc.SetMulticastTTL(255)
	_ = pc.SetMulticastLoopback(true)
	c := &mdnsConn{pc: pc, ifaces: ifaces, index: map[int]bool{}}
	joined := 0
	var errs []error
	for i := range ifaces {
		if err := pc.JoinGroup(&ifaces[i], &net.UDPAddr{IP: mdnsGroup.IP}); err != nil {
			errs = append(errs, fmt.Errorf("join mDNS group on %s: %w", ifaces[i].Name, err))
			continue
		}
		c.index[ifaces[i].Index] = true
		joined++
	}
	if joined == 0 {
		udp.Close()
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (c *mdnsConn) Close() error { return c.pc.Close() }

// send multicasts msg on every interface.
func (c *mdnsConn) send(msg *dns.Msg) error {
	buf, err := msg.Pack()
	if err != nil {
		return err
	}
	var errs []error
	for _, ifi := range c.ifaces {
		if !c.index[ifi.Index] {
			continue
		}
		cm := &ipv4.ControlMessage{IfIndex: ifi.Index}
		if _, err := c.pc.WriteTo(buf, cm, mdnsGroup); err != nil {
			errs = append(errs, fmt.Errorf("send mDNS query on %s: %w", ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

// inbound is one received mDNS message.
type inbound struct {
	msg     *dns.Msg
	src     *net.UDPAddr
	ifIndex int
}

// recv reads packets until the socket is closed, passing each parsed
// message that arrived on one of our interfaces and that want accepts to
// out. want is asked before parsing, with the header's QR bit, so that a
// socket that ignores responses does not pay for parsing every other
// machine's answers.
func (c *mdnsConn) recv(out chan<- inbound, done <-chan struct{}, want func(response bool) bool) {
	buf := make([]byte, 9000)
	for {
		n, cm, src, err := c.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-done:
				return
			default:
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ifIndex := 0
		if cm != nil {
			ifIndex = cm.IfIndex
		}
		if ifIndex != 0 && !c.index[ifIndex] {
			continue
		}
		if n < 3 || !want(buf[2]&0x80 != 0) {
			continue
		}
		msg := new(dns.Msg)
		if err := msg.Unpack(buf[:n]); err != nil {
			continue
		}
		udp, _ := src.(*net.UDPAddr)
		select {
		case out <- inbound{msg: msg, src: udp, ifIndex: ifIndex}:
		case <-done:
			return
		}
	}
}

// sendTo sends msg on one interface (ifIndex 0: all) or, with dst, by
// unicast to dst.
func (c *mdnsConn) sendTo(msg *dns.Msg, ifIndex int, dst *net.UDPAddr) error {
	if dst == nil && ifIndex == 0 {
		return c.send(msg)
	}
	buf, err := msg.Pack()
	if err != nil {
		return err
	}
	to := mdnsGroup
	if dst != nil {
		to = dst
	}
	var cm *ipv4.ControlMessage
	if ifIndex != 0 {
		cm = &ipv4.ControlMessage{IfIndex: ifIndex}
	}
	_, err = c.pc.WriteTo(buf, cm, to)
	return err
}

// instanceFQDN escapes an instance label and appends the service name.
func instanceFQDN(instance string) string {
	var b strings.Builder
	for i := 0; i < len(instance); i++ {
		c := instance[i]
		switch c {
		case '.', '\\', ' ', '(', ')', ';', '"', '@', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, "\\%03d", c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String() + "." + serviceName
}

// instanceOf returns the unescaped instance label of a name under our
// service type.
func instanceOf(name string) (string, bool) {
	lower := strings.ToLower(name)
	if !strings.HasSuffix(lower, "."+serviceName) {
		return "", false
	}
	label := name[:len(name)-len(serviceName)-1]
	labels := dns.SplitDomainName(label)
	if len(labels) != 1 {
		return "", false
	}
	return unescapePresentation(labels[0]), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// wireRecord is what one mDNS message says about one instance.
type wireRecord struct {
	instance string
	goodbye  bool
	hasTXT   bool
	txt      []string
	ttl      time.Duration
	host     string
	port     int
	// ptrTTL is the TTL of the instance's PTR record when the message
	// held one (0: none, or a goodbye).
	ptrTTL time.Duration
	// addrs are the announcing host's own addresses: the packet's source
	// address (passive listener) or the entry's A/AAAA records (zeroconf).
	addrs []net.IP

	viaZeroconf bool // from a zeroconf entry, not the passive listener
}

// recordsOf groups the records of an mDNS response by instance. A PTR or SRV
// with TTL 0 is a goodbye.
func recordsOf(msg *dns.Msg) []*wireRecord {
	byInst := map[string]*wireRecord{}
	var order []string
	get := func(inst string) *wireRecord {
		r := byInst[inst]
		if r == nil {
			r = &wireRecord{instance: inst}
			byInst[inst] = r
			order = append(order, inst)
		}
		return r
	}
	// seen records that an instance's record was received with ttl; TTL 0
	// is a goodbye. It returns nil for a name outside our service type.
	seen := func(name string, ttl uint32) *wireRecord {
		inst, ok := instanceOf(name)
		if !ok {
			return nil
		}
		r := get(inst)
		if ttl == 0 {
			r.goodbye = true
		} else if d := time.Duration(ttl) * time.Second; r.ttl == 0 || d < r.ttl {
			r.ttl = d
		}
		return r
	}
	all := make([]dns.RR, 0, len(msg.Answer)+len(msg.Extra))
	all = append(all, msg.Answer...)
	all = append(all, msg.Extra...)
	for _, rr := range all {
		switch x := rr.(type) {
		case *dns.PTR:
			if strings.EqualFold(x.Hdr.Name, serviceName) {
				if r := seen(x.Ptr, x.Hdr.Ttl); r != nil && x.Hdr.Ttl != 0 {
					r.ptrTTL = time.Duration(x.Hdr.Ttl) * time.Second
				}
			}
		case *dns.SRV:
			if r := seen(x.Hdr.Name, x.Hdr.Ttl); r != nil && x.Hdr.Ttl != 0 {
				r.host, r.port = x.Target, int(x.Port)
			}
		case *dns.TXT:
			if x.Hdr.Ttl == 0 {
				continue // a TXT goodbye alone says nothing about the instance
			}
			if r := seen(x.Hdr.Name, x.Hdr.Ttl); r != nil {
				r.hasTXT = true
				r.txt = make([]string, len(x.Txt))
				for i, s := range x.Txt {
					r.txt[i] = txtFromWire(s)
				}
			}
		}
	}
	out := make([]*wireRecord, 0, len(order))
	for _, inst := range order {
		out = append(out, byInst[inst])
	}
	return out
}

// txtToWire escapes a raw TXT string for miekg/dns, which reads TXT strings
// in presentation form (a backslash escapes the next byte or starts \DDD).
func txtToWire(s string) string { return strings.ReplaceAll(s, `\`, `\\`) }

// txtFromWire undoes miekg/dns's presentation escaping of a received TXT
// string (\" \\ and \DDD).
func txtFromWire(s string) string { return unescapePresentation(s) }

// unescapePresentation undoes the escapes of miekg/dns's presentation form
// (a backslash before a byte, or \DDD for a byte in decimal).
func unescapePresentation(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				b.WriteByte((s[i+1]-'0')*100 + (s[i+2]-'0')*10 + (s[i+3] - '0'))
				i += 3
				continue
			}
			b.WriteByte(s[i+1])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// queriedInstances returns the instances that records carried by a query
// name: the proposed records of a probe (authority section, RFC 6762
// §8.2) and known answers (answer section, §7.1). Such records are not
// answers, but zeroconf v1.0.0 reads every message's records as answers,
// whether it is a query or a response.
func queriedInstances(msg *dns.Msg) []string {
	if msg.Response {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, sec := range [][]dns.RR{msg.Answer, msg.Ns} {
		for _, rr := range sec {
			name := rr.Header().Name
			if p, ok := rr.(*dns.PTR); ok {
				name = p.Ptr
			}
			if inst, ok := instanceOf(name); ok && !seen[inst] {
				seen[inst] = true
				out = append(out, inst)
			}
		}
	}
	return out
}
