package discovery

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// Known-answer suppression (RFC 6762 §7.1) on the browser's side. Every
// round asks for the PTR records of ServiceType. Without a known-answer
// list every machine answers every round with all its records, and every
// machine on the link receives every answer: at 100 machines and a round
// every 2 s that is 50 answers a second, which overflowed the
// coordinator's receive buffer and made each machine's idle CPU grow with
// their number. With the list, a machine whose PTR record the browser holds
// with at least half its TTL left stays silent (responder.answer), and
// answers again once the browser stops listing it.
//
// Only instances whose liveness the probes establish are listed: an
// announced endpoint whose last probe it answered (a probed member is
// never removed for silence, see MembershipConfig.ProbedEndpoints); never
// with probing off. A machine
// without an endpoint keeps answering every round, since its answers are
// its liveness. A listed PTR record is dropped from the list before half
// its TTL has passed, at a random point of the last fifth of that half
// (RFC 6762 §5.2 adds random variance to refresh queries for the same
// reason): machines first seen together then refresh at different rounds
// rather than all in one burst, and the TTL is refreshed long before it
// runs out.

// knownPTR is when an instance's PTR record was last received, with which
// TTL, and until when the browse query lists it.
type knownPTR struct {
	seen  time.Time
	ttl   time.Duration
	until time.Time
}

// newKnownPTR records a PTR record received at now with ttl, in a message
// whose records the membership keeps for expiry (the smallest TTL of the
// message: a responder caps its SRV and address records at 120 s). The
// record is listed until half the shorter of the two has passed, so the
// machine answers again before the membership's record expires.
func newKnownPTR(now time.Time, ttl, expiry time.Duration) *knownPTR {
	half := min(ttl, expiry) / 2
	return &knownPTR{seen: now, ttl: ttl, until: now.Add(half - time.Duration(rand.Int64N(int64(half/5)+1)))}
}

// maxQueryPayload is the largest query the browser sends: RFC 6762 §17's
// 9000 bytes less the IPv4 and UDP headers.
const maxQueryPayload = 9000 - 20 - 8

// ptrQuery is a round's PTR question for ServiceType, listing the
// known answers of the instances in listed (at now). The list is cut to
// fit one packet; the instances left out answer, which costs traffic only.
func ptrQuery(known map[string]*knownPTR, listed func(instance string) bool, now time.Time) *dns.Msg {
	m := new(dns.Msg)
	m.Question = []dns.Question{{Name: serviceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	m.Compress = true
	insts := make([]string, 0, len(known))
	for inst, k := range known {
		if now.Before(k.until) && listed(inst) {
			insts = append(insts, inst)
		}
	}
	slices.Sort(insts)
	for _, inst := range insts {
		k := known[inst]
		left := uint32((k.ttl - now.Sub(k.seen)) / time.Second)
		if left == 0 {
			continue // a TTL under 2 s: nothing to list
		}
		m.Answer = append(m.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: serviceName, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: left},
			Ptr: instanceFQDN(inst),
		})
	}
	for n := m.Len(); n > maxQueryPayload; n = m.Len() {
		m.Answer = m.Answer[:max(len(m.Answer)*maxQueryPayload/n-1, 0)]
	}
	return m
}

// listedUntil is when the browse query stops (or stopped) listing inst
// (zero: never listed); a TXT record is only missed from then on.
func listedUntil(known map[string]*knownPTR, inst string) time.Time {
	if k := known[inst]; k != nil {
		return k.until
	}
	return time.Time{}
}
