package discovery

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/grandcat/zeroconf"
	"go.uber.org/zap"
)

// The active half of the browser runs on github.com/grandcat/zeroconf
// v1.0.0: an instance whose TXT record must be (re-)read gets a zeroconf
// Lookup, and without the passive listener every browse round is one
// zeroconf Browse (with it, the browser sends its own query, which lists
// known answers, and reads the answers there). The library is used
// for what it does well (sending the DNS-SD queries on the named interfaces
// and assembling PTR/SRV/TXT/A answers into service entries) and designed
// around what it does not do:
//
//   - a Resolver reports each instance once and stops querying after the
//     first answer, so every round uses a fresh Resolver (its socket is
//     closed when the round ends);
//   - it never reports goodbyes (TTL 0 entries are dropped), TXT changes
//     announced without a query, or expiry: the passive listener (mdns.go)
//     sees those, and the membership table keeps TTLs and no-answer
//     deadlines;
//   - it reads the records of queries as answers (a probe's proposed
//     records, known answers): the browser loop handles zeroconf entries
//     zcDelay after they arrive, once the passive listener has read the
//     same packet, and holds back those of instances that a query or a
//     goodbye just named (queryHold);
//   - its Lookup filters answers by the service, not by the instance
//     (v1.0.0 sets the instance after building its parameters), so a
//     lookup reports any instance's answer: harmless, all are valid;
//   - its Browse blocks on sending an entry and closes the entries channel
//     only when its context ends, so a round drains the channel to the end;
//   - its socket is bound to the wildcard 0.0.0.0:5353 and, Linux's
//     IP_MULTICAST_ALL being on by default, receives the mDNS packets of
//     every interface that some socket of the host joined the group on (an
//     Avahi daemon on the host's other interfaces, say). It does not say on
//     which interface an answer came, so an entry is only accepted when one
//     of its IPv4 addresses lies in a subnet of a configured interface.

// logOffLink is the debug message for a zeroconf entry of another link.
const logOffLink = "zeroconf entry from another interface ignored"

// zeroconfRounds runs browse rounds and lookups with zeroconf and hands the
// entries to the browser loop as wire records.
type zeroconfRounds struct {
	ifaces []net.Interface
	out    chan<- *wireRecord
	log    *zap.Logger

	warnOnce sync.Once
}

func newZeroconfRounds(ifaces []net.Interface, out chan<- *wireRecord, log *zap.Logger) *zeroconfRounds {
	return &zeroconfRounds{ifaces: ifaces, out: out, log: log}
}

// linkFilter holds the IPv4 subnets of the configured interfaces, read at
// the start of each round (addresses may change while the browser runs).
type linkFilter struct {
	nets    []*net.IPNet
	anyAddr bool // an interface without an IPv4 address: no address filter
}

func (z *zeroconfRounds) linkFilter() *linkFilter {
	f := &linkFilter{}
	for i := range z.ifaces {
		addrs, err := z.ifaces[i].Addrs()
		found := false
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				f.nets = append(f.nets, n)
				found = true
			}
		}
		if err != nil || !found {
			f.anyAddr = true
		}
	}
	return f
}

// round runs one zeroconf Browse for ServiceType when browse is set, plus
// one Lookup per instance in lookups, until ctx ends.
func (z *zeroconfRounds) round(ctx context.Context, browse bool, lookups []string) {
	f := z.linkFilter()
	var wg sync.WaitGroup
	run := func(instance string) {
		defer wg.Done()
		z.run(ctx, instance, f)
	}
	if browse {
		wg.Add(1)
		go run("")
	}
	wg.Add(len(lookups))
	for _, inst := range lookups {
		go run(inst)
	}
	wg.Wait()
}

// run is one Browse (instance "") or Lookup with a fresh Resolver.
func (z *zeroconfRounds) run(ctx context.Context, instance string, f *linkFilter) {
	if len(z.ifaces) == 0 {
		return // never: zeroconf takes "no interface" as "all interfaces"
	}
	res, err := zeroconf.NewResolver(zeroconf.SelectIfaces(z.ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	if err != nil {
		z.warnOnce.Do(func() { z.log.Warn("zeroconf resolver", zap.Error(err)) })
		return
	}
	entries := make(chan *zeroconf.ServiceEntry, 16)
	if instance == "" {
		err = res.Browse(ctx, ServiceType, mdnsDomain, entries)
	} else {
		err = res.Lookup(ctx, instanceLabel(instance), ServiceType, mdnsDomain, entries)
	}
	if err != nil {
		// Browse/Lookup cancel their own context on error, which closes
		// entries; fall through to drain it.
		z.log.Debug("zeroconf query", zap.String("instance", instance), zap.Error(err))
	}
	// zeroconf closes entries when ctx ends; until then its main loop
	// blocks on every send, so read to the end.
	for e := range entries {
		r, ok := z.record(e, f)
		if !ok {
			continue
		}
		select {
		case z.out <- r:
		case <-ctx.Done():
		}
	}
}

// record converts a zeroconf entry into the browser's wire record.
func (z *zeroconfRounds) record(e *zeroconf.ServiceEntry, f *linkFilter) (*wireRecord, bool) {
	if e == nil || e.TTL == 0 {
		return nil, false
	}
	// e.Instance is the label in presentation form (miekg/dns escapes).
	inst, ok := instanceOf(e.Instance + "." + serviceName)
	if !ok {
		return nil, false
	}
	if !f.onLink(e.AddrIPv4) {
		z.log.Debug(logOffLink, zap.String("instance", inst))
		return nil, false
	}
	r := &wireRecord{instance: inst, ttl: time.Duration(e.TTL) * time.Second, host: e.HostName, port: e.Port, viaZeroconf: true,
		addrs: append(append([]net.IP(nil), e.AddrIPv4...), e.AddrIPv6...)}
	if e.Text != nil {
		r.hasTXT = true
		r.txt = make([]string, len(e.Text))
		for i, s := range e.Text {
			r.txt[i] = txtFromWire(s)
		}
	}
	return r, true
}

// onLink says whether one of addrs lies in a subnet of our interfaces.
func (f *linkFilter) onLink(addrs []net.IP) bool {
	if f.anyAddr {
		return true
	}
	for _, ip := range addrs {
		for _, n := range f.nets {
			if n.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// instanceLabel is an instance label in presentation form, as zeroconf
// compares it with received names.
func instanceLabel(instance string) string {
	fq := instanceFQDN(instance)
	return fq[:len(fq)-len(serviceName)-1]
}
