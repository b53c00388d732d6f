package discovery

import (
	"sort"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

// EventKind says what happened to a target.
type EventKind string

// The event kinds.
const (
	EventAdded   EventKind = "added"
	EventRemoved EventKind = "removed"
	EventChanged EventKind = "changed"
)

// Reasons of events.
const (
	ReasonAnnounced   = "announced"
	ReasonGoodbye     = "goodbye"
	ReasonTTLExpired  = "ttl-expired"
	ReasonNoAnswer    = "no-answer"
	ReasonProbeFailed = "probe-failed"
	ReasonProbeOK     = "probe-ok"
	ReasonTXTChanged  = "txt-changed"
	ReasonGenerated   = "generated"
	ReasonFile        = "file-changed"
	// ReasonDrain: the target's agent reported that it drains (a graceful
	// leave whose goodbye may have been lost).
	ReasonDrain = "drain"
	// ReasonConflict: a second instance claims a hostname (EventConflict).
	ReasonConflict = "hostname-conflict"
	// ReasonTakeover: the instance that held a hostname left and another
	// instance claiming it took over (an EventChanged: new endpoint).
	ReasonTakeover = "conflict-takeover"
)

// EventConflict reports that an instance claims the hostname of a target
// another instance holds; the claim is ignored (see Snapshot.Conflicts).
const EventConflict EventKind = "conflict"

// Event is one change of the infrastructure.
type Event struct {
	Kind   EventKind `json:"kind"`
	Target string    `json:"target"`
	Reason string    `json:"reason"`
	// At is when the change happened: for a removal by a deadline (no
	// answer, TTL expiry, goodbye grace), the deadline that passed, which
	// the browser may notice a little later.
	At time.Time `json:"at"`
}

// Graceful reports whether the event is a removal the target confirmed:
// an mDNS goodbye or an agent drain. The loop acts on it without a grace
// period.
func (e Event) Graceful() bool {
	return e.Kind == EventRemoved && (e.Reason == ReasonGoodbye || e.Reason == ReasonDrain)
}

// Snapshot is the infrastructure as a source sees it, with the events since
// the previous snapshot.
type Snapshot struct {
	Infrastructure model.Infrastructure `json:"infrastructure"`
	Events         []Event              `json:"events"`
	At             time.Time            `json:"at"`
	// Conflicts lists the instances whose claim of a hostname is ignored
	// because another instance holds it.
	Conflicts []Conflict `json:"conflicts,omitempty"`
}

// Claim is one instance's announcement of a hostname.
type Claim struct {
	Instance string `json:"instance"`
	Endpoint string `json:"endpoint,omitempty"`
}

// Conflict is two instances claiming one hostname: the target of Kept is
// used, Ignored's claim is not, for Reason.
type Conflict struct {
	Hostname string `json:"hostname"`
	Kept     Claim  `json:"kept"`
	Ignored  Claim  `json:"ignored"`
	Reason   string `json:"reason"`
}

// ConflictFirstSeen is the reason of a conflict between two accepted
// instances: the one seen first keeps the hostname (never the newest).
const ConflictFirstSeen = "the instance seen first keeps the hostname"

// Observation is what the network said about one service instance.
type Observation struct {
	// Instance is the DNS-SD instance name ("disnix-test1").
	Instance string
	// Goodbye is true for a record announced with TTL 0.
	Goodbye bool
	// Target is the full target (nil when the observation only shows that
	// the instance answered: a PTR or SRV without a TXT record).
	Target *model.Target
	// Hash identifies the content (announced hash, or computed).
	Hash string
	// Endpoint is the announced endpoint, if any.
	Endpoint string
	// TTL is the smallest TTL of the records seen (0 = unknown).
	TTL time.Duration
}

// MembershipConfig tunes the membership table. Zero fields take defaults.
type MembershipConfig struct {
	// NoAnswerTimeout removes a target that has not answered for this long
	// while the browser keeps querying (default 3 browse rounds + 0.5 s).
	NoAnswerTimeout time.Duration
	// GoodbyeGrace is how long a goodbye waits for a re-announcement before
	// the target is removed (RFC 6762 §10.1: 1 s).
	GoodbyeGrace time.Duration
	// ProbeFailures is the number of consecutive failed liveness probes of an
	// announced endpoint after which the target is removed (default 2); a
	// successful probe is needed to bring it back (hysteresis).
	ProbeFailures int
	// ProbedEndpoints says that announced endpoints are probed: a target
	// with an endpoint is then removed by failed probes, its goodbye or
	// the expiry of its records' TTL, never by silence alone (the
	// coordinator that hears nothing may be the one that is starved).
	ProbedEndpoints bool
}

func (c MembershipConfig) withDefaults() MembershipConfig {
	if c.NoAnswerTimeout <= 0 {
		c.NoAnswerTimeout = 3*DefaultBrowseInterval + 500*time.Millisecond
	}
	if c.GoodbyeGrace < 0 {
		c.GoodbyeGrace = 0
	} else if c.GoodbyeGrace == 0 {
		c.GoodbyeGrace = time.Second
	}
	if c.ProbeFailures <= 0 {
		c.ProbeFailures = 2
	}
	return c
}

// member is one instance in the table.
type member struct {
	instance  string
	target    *model.Target
	hash      string
	endpoint  string
	lastSeen  time.Time
	expires   time.Time // record TTL expiry (zero: none)
	goodbyeAt time.Time // zero: no pending goodbye
	probeFail int
	down      bool   // removed by failed probes, still answering mDNS
	present   bool   // an added event was emitted and no removed since
	seq       uint64 // order of the hostname claims: the lowest holds it
}

// Membership is the browser's table of instances, written as a state machine
// without I/O: feed it observations and probe results with the time they
// happened, call Advance when NextDeadline passes, and read events from the
// return values.
//
// Two instances claiming one hostname are a conflict: the one that claimed
// it first holds it until it leaves, the other is reported (Conflicts,
// EventConflict) and takes over only then (EventChanged, ReasonTakeover).
// The events are about hostnames: those of an instance that does not hold
// its hostname are not reported.
type Membership struct {
	cfg     MembershipConfig
	members map[string]*member
	seq     uint64
	// conflicted holds the claims (hostname, instance) ignored after the
	// last change, so a new one is reported once.
	conflicted map[[2]string]bool
}

// NewMembership returns an empty table.
func NewMembership(cfg MembershipConfig) *Membership {
	return &Membership{cfg: cfg.withDefaults(), members: map[string]*member{}, conflicted: map[[2]string]bool{}}
}

// held is what the infrastructure shows of a hostname's holder.
type held struct{ instance, hash, endpoint string }

// view returns hostname → holder state, for the hostnames in only (all
// when only is nil).
func (m *Membership) view(only map[string]bool) map[string]held {
	out := map[string]held{}
	for name, mb := range m.holdersOf(only) {
		out[name] = held{mb.instance, mb.hash, mb.endpoint}
	}
	return out
}

// holders returns hostname → the present member holding it (the one with
// the lowest claim order).
func (m *Membership) holders() map[string]*member { return m.holdersOf(nil) }

// holdersOf is holders for the hostnames in only (all when only is nil).
func (m *Membership) holdersOf(only map[string]bool) map[string]*member {
	out := map[string]*member{}
	for _, mb := range m.members {
		if !mb.present || mb.target == nil || (only != nil && !only[mb.target.Name]) {
			continue
		}
		if cur := out[mb.target.Name]; cur == nil || mb.seq < cur.seq {
			out[mb.target.Name] = mb
		}
	}
	return out
}

// hostnamesOf returns the hostname an instance claims, as a set (empty when
// it claims none yet), plus extra when not empty: what a change of that
// one instance can affect.
func (m *Membership) hostnamesOf(instance, extra string) map[string]bool {
	out := map[string]bool{}
	if mb := m.members[instance]; mb != nil && mb.target != nil {
		out[mb.target.Name] = true
	}
	if extra != "" {
		out[extra] = true
	}
	return out
}

// settle applies change and turns the per-instance events it returns into
// hostname events: a hostname's appearance, disappearance, change of
// content or endpoint, change of holder, and each new conflict. When only
// is not nil the change can affect those hostnames alone (one instance's
// observation or probe), and only they are compared: an answer costs a
// pass over the table, not a sort of it.
func (m *Membership) settle(only map[string]bool, change func() []Event, now time.Time) []Event {
	before := m.view(only)
	raw := change()
	after := m.view(only)
	find := func(kind EventKind, name, reason string) Event {
		for _, e := range raw {
			if e.Kind == kind && e.Target == name {
				return e
			}
		}
		return Event{Kind: kind, Target: name, Reason: reason, At: now}
	}
	names := make([]string, 0, len(before)+len(after))
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var evs []Event
	for _, n := range names {
		b, inB := before[n]
		a, inA := after[n]
		switch {
		case !inA:
			evs = append(evs, find(EventRemoved, n, ReasonTXTChanged))
		case !inB:
			evs = append(evs, find(EventAdded, n, ReasonAnnounced))
		case b.instance != a.instance:
			evs = append(evs, Event{Kind: EventChanged, Target: n, Reason: ReasonTakeover, At: now})
		case b != a:
			evs = append(evs, find(EventChanged, n, ReasonTXTChanged))
		}
	}
	cur := map[[2]string]bool{}
	for k := range m.conflicted {
		if only != nil && !only[k[0]] {
			cur[k] = true // a hostname the change did not touch
		}
	}
	for _, c := range m.conflictsOf(only) {
		k := [2]string{c.Hostname, c.Ignored.Instance}
		cur[k] = true
		if !m.conflicted[k] {
			evs = append(evs, Event{Kind: EventConflict, Target: c.Hostname, Reason: ReasonConflict, At: now})
		}
	}
	m.conflicted = cur
	return evs
}

// Conflicts returns the claims of present instances on hostnames another
// instance holds, sorted by hostname and instance.
func (m *Membership) Conflicts() []Conflict { return m.conflictsOf(nil) }

// conflictsOf is Conflicts for the hostnames in only (all when only is
// nil).
func (m *Membership) conflictsOf(only map[string]bool) []Conflict {
	hs := m.holdersOf(only)
	var claims []string
	for inst, mb := range m.members {
		if mb.present && mb.target != nil && (only == nil || only[mb.target.Name]) {
			claims = append(claims, inst)
		}
	}
	sort.Strings(claims)
	var out []Conflict
	for _, inst := range claims {
		mb := m.members[inst]
		if h := hs[mb.target.Name]; h != mb {
			out = append(out, Conflict{Hostname: mb.target.Name, Kept: Claim{h.instance, h.endpoint},
				Ignored: Claim{mb.instance, mb.endpoint}, Reason: ConflictFirstSeen})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// Holder returns the instance holding hostname, if any.
func (m *Membership) Holder(hostname string) (Claim, bool) {
	mb := m.holders()[hostname]
	if mb == nil {
		return Claim{}, false
	}
	return Claim{mb.instance, mb.endpoint}, true
}

// Put records an observation at now and returns the events it causes.
func (m *Membership) Put(o Observation, now time.Time) []Event {
	name := ""
	if o.Target != nil {
		name = o.Target.Name
	}
	return m.settle(m.hostnamesOf(o.Instance, name), func() []Event { return m.put(o, now) }, now)
}

func (m *Membership) put(o Observation, now time.Time) []Event {
	mb := m.members[o.Instance]
	if o.Goodbye {
		if mb != nil && mb.goodbyeAt.IsZero() {
			mb.goodbyeAt = now
		}
		return nil
	}
	if mb == nil {
		if o.Target == nil {
			return nil // answered, but we know nothing about it yet
		}
		mb = &member{instance: o.Instance}
		m.members[o.Instance] = mb
	}
	mb.lastSeen = now
	mb.goodbyeAt = time.Time{}
	if o.TTL > 0 {
		mb.expires = now.Add(o.TTL)
	}
	if o.Target == nil {
		return nil
	}
	var evs []Event
	changed := mb.target != nil && (mb.hash != o.Hash || mb.endpoint != o.Endpoint || mb.target.Name != o.Target.Name)
	renamed := mb.target != nil && mb.target.Name != o.Target.Name
	if renamed && mb.present {
		evs = append(evs, Event{Kind: EventRemoved, Target: mb.target.Name, Reason: ReasonTXTChanged, At: now})
		mb.present = false
	}
	if mb.target == nil || renamed {
		m.seq++ // a new claim of a hostname
		mb.seq = m.seq
	}
	mb.target, mb.hash = o.Target, o.Hash
	if o.Endpoint != mb.endpoint {
		mb.endpoint = o.Endpoint
		mb.probeFail, mb.down = 0, false
	}
	switch {
	case mb.down:
	case !mb.present:
		mb.present = true
		evs = append(evs, Event{Kind: EventAdded, Target: mb.target.Name, Reason: ReasonAnnounced, At: now})
	case changed:
		evs = append(evs, Event{Kind: EventChanged, Target: mb.target.Name, Reason: ReasonTXTChanged, At: now})
	}
	return evs
}

// ProbeResult records the outcome of a liveness probe of an instance's
// endpoint.
func (m *Membership) ProbeResult(instance string, ok bool, now time.Time) []Event {
	return m.settle(m.hostnamesOf(instance, ""), func() []Event { return m.probeResult(instance, ok, now) }, now)
}

func (m *Membership) probeResult(instance string, ok bool, now time.Time) []Event {
	mb := m.members[instance]
	if mb == nil || mb.endpoint == "" {
		return nil
	}
	if ok {
		mb.probeFail = 0
		// The endpoint it announced answers: the target is alive, whatever
		// multicast lost. Its record counts as fresh, so the no-answer
		// deadline removes only a target whose endpoint fails too (probe
		// failures remove it sooner): answers dropped by a receiver that
		// was starved or flooded do not remove a whole fleet at once, and
		// a partition that healed does not look like a flapping machine.
		mb.lastSeen = now
		if mb.down {
			mb.down = false
			if !mb.present && mb.target != nil {
				mb.present = true
				return []Event{{Kind: EventAdded, Target: mb.target.Name, Reason: ReasonProbeOK, At: now}}
			}
		}
		return nil
	}
	mb.probeFail++
	if mb.probeFail >= m.cfg.ProbeFailures && !mb.down {
		mb.down = true
		if mb.present {
			mb.present = false
			return []Event{{Kind: EventRemoved, Target: mb.target.Name, Reason: ReasonProbeFailed, At: now}}
		}
	}
	return nil
}

// deadline returns when the member must go and why; a zero time when
// nothing but a probe can remove it.
func (m *Membership) deadline(mb *member) (time.Time, string) {
	var at time.Time
	var why string
	earlier := func(t time.Time, reason string) {
		if at.IsZero() || t.Before(at) {
			at, why = t, reason
		}
	}
	if !m.cfg.ProbedEndpoints || mb.endpoint == "" || mb.down {
		earlier(mb.lastSeen.Add(m.cfg.NoAnswerTimeout), ReasonNoAnswer)
	}
	if !mb.expires.IsZero() {
		earlier(mb.expires, ReasonTTLExpired)
	}
	if !mb.goodbyeAt.IsZero() {
		if g := mb.goodbyeAt.Add(m.cfg.GoodbyeGrace); at.IsZero() || !at.Before(g) {
			at, why = g, ReasonGoodbye
		}
	}
	return at, why
}

// Advance removes the members whose deadline has passed and returns the
// removal events, dated at their deadlines.
func (m *Membership) Advance(now time.Time) []Event {
	return m.settle(nil, func() []Event { return m.advance(now) }, now)
}

func (m *Membership) advance(now time.Time) []Event {
	var evs []Event
	for _, inst := range m.instances() {
		mb := m.members[inst]
		at, why := m.deadline(mb)
		if at.IsZero() || at.After(now) {
			continue
		}
		delete(m.members, inst)
		if mb.present {
			evs = append(evs, Event{Kind: EventRemoved, Target: mb.target.Name, Reason: why, At: at})
		}
	}
	return evs
}

// NextDeadline returns the earliest time Advance has something to do, and
// false when the table is empty.
func (m *Membership) NextDeadline() (time.Time, bool) {
	var best time.Time
	for _, mb := range m.members {
		at, _ := m.deadline(mb)
		if at.IsZero() {
			continue
		}
		if best.IsZero() || at.Before(best) {
			best = at
		}
	}
	return best, !best.IsZero()
}

// Known reports whether the table holds the instance with the given hash
// (so the browser need not fetch or verify it again).
func (m *Membership) Known(instance, hash string) bool {
	mb := m.members[instance]
	return mb != nil && mb.target != nil && hash != "" && mb.hash == hash
}

// Has reports whether the instance is in the table.
func (m *Membership) Has(instance string) bool { return m.members[instance] != nil }

// Endpoints returns instance → endpoint for members that announce one.
func (m *Membership) Endpoints() map[string]string {
	out := map[string]string{}
	for inst, mb := range m.members {
		if mb.endpoint != "" {
			out[inst] = mb.endpoint
		}
	}
	return out
}

// Target returns the target instance announced (nil: none), which the
// caller must not modify.
func (m *Membership) Target(instance string) *model.Target {
	if mb := m.members[instance]; mb != nil {
		return mb.target
	}
	return nil
}

// Infrastructure returns the present targets. When two instances claim the
// same target name, the one that claimed it first holds it (Conflicts).
func (m *Membership) Infrastructure() model.Infrastructure {
	out := model.Infrastructure{}
	for _, mb := range m.holders() {
		t := mb.target.Clone()
		if mb.endpoint != "" {
			if t.Properties == nil {
				t.Properties = map[string]any{}
			}
			t.Properties[AgentURLProperty] = mb.endpoint
		}
		out[t.Name] = t
	}
	return out
}

func (m *Membership) instances() []string {
	out := make([]string, 0, len(m.members))
	for k := range m.members {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
