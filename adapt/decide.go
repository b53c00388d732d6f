package adapt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

// MemberState is where a target stands in the loop's membership table.
type MemberState string

// Membership states. Only Up and Leaving targets are given to the policy.
const (
	// MemberUp: present and used.
	MemberUp MemberState = "up"
	// MemberLeaving: missing from discovery without a goodbye; still used
	// until its grace period ends (a return cancels the removal).
	MemberLeaving MemberState = "leaving"
	// MemberDown: gone; not used.
	MemberDown MemberState = "down"
	// MemberProbation: back after a removal; not used until it has been
	// present without interruption for its stabilisation period.
	MemberProbation MemberState = "probation"
)

type member struct {
	state    MemberState
	since    time.Time
	deadline time.Time // Leaving: removal time; Probation: admission time
	removals []time.Time
	target   *model.Target
	reason   string
	lostAt   time.Time // when a Leaving target went missing
	// lost is set for a Down target that vanished without a goodbye (a
	// crash): the pass treats it as unreachable without probing it.
	lost bool
}

// ObservationKind says what an Observation carries.
type ObservationKind int

// Observation kinds.
const (
	// ObsTick: time passed (a deadline the decider asked for).
	ObsTick ObservationKind = iota
	// ObsSnapshot: a discovery snapshot.
	ObsSnapshot
	// ObsModels: the model files were (re)loaded; ModelsHash is their hash.
	ObsModels
	// ObsResync: the periodic safety-net resync.
	ObsResync
	// ObsDeployDone: the deploy ordered earlier finished.
	ObsDeployDone
	// ObsControl: an operator's command (Control; checked with
	// CheckControl first).
	ObsControl
	// ObsLeadership: this coordinator's standing among several changed
	// (Leading); a standby coordinator deploys nothing.
	ObsLeadership
)

// ControlOp names an operator's command.
type ControlOp string

// The operator's commands.
const (
	// ControlCordon: no new service is placed on the target; the ones
	// there stay.
	ControlCordon ControlOp = "cordon"
	// ControlDrain: cordon, and move the target's services away.
	ControlDrain ControlOp = "drain"
	// ControlUncordon reverses cordon and drain.
	ControlUncordon ControlOp = "uncordon"
	// ControlPause: the loop observes but does not deploy.
	ControlPause ControlOp = "pause"
	// ControlResume ends a pause.
	ControlResume ControlOp = "resume"
	// ControlRedeploy runs a pass now even if nothing changed.
	ControlRedeploy ControlOp = "redeploy"
)

// Control is an operator's command; Target is set for cordon, drain and
// uncordon.
type Control struct {
	Op     ControlOp
	Target string
}

// Observation is one input of the decision step.
type Observation struct {
	Kind       ObservationKind
	Snapshot   discovery.Snapshot
	ModelsHash string
	// Deploy outcome (ObsDeployDone).
	Key string
	Err error
	// Control is the operator's command (ObsControl).
	Control Control
	// Leading says whether this coordinator leads (ObsLeadership).
	Leading bool
}

// DeployOrder asks the loop to plan and deploy.
type DeployOrder struct {
	// Key identifies the input (models hash + used infrastructure).
	Key string
	// Infrastructure holds the targets to deploy to (not augmented).
	Infrastructure model.Infrastructure
	// Causes lists what changed since the previous order.
	Causes []string
	// Since is the time of the earliest observation this order answers
	// (for a removal after a grace period: when the target went missing).
	Since time.Time
	// Attempt is 0 for a first try, n for the n-th retry.
	Attempt int
	// Reconcile lists targets that joined or returned since the last
	// successful deploy: what they already run must be compared with the
	// manifest (adopted or deactivated, never duplicated).
	Reconcile []string
	// Cordon lists the cordoned targets in use: the pass places no new
	// service on them.
	Cordon []string
	// Force asks for a pass even if the input is unchanged (an operator's
	// redeploy).
	Force bool
	// Lost lists the targets discovery declared lost without a goodbye
	// (crashed): the pass does not probe them again.
	Lost []string
}

// Action is the decision step's answer.
type Action struct {
	// Deploy is non-nil when a deploy must start now.
	Deploy *DeployOrder
	// Wake is when the decider wants to be called again (zero: only on the
	// next observation).
	Wake time.Time
	// Changes lists the membership transitions made by this step.
	Changes []MemberChange
}

// MemberChange is one membership transition.
type MemberChange struct {
	Target string      `json:"target"`
	From   MemberState `json:"from"`
	To     MemberState `json:"to"`
	Reason string      `json:"reason,omitempty"`
	At     time.Time   `json:"at"`
}

// MemberStatus is a target's row in the membership table.
type MemberStatus struct {
	Target   string      `json:"target"`
	State    MemberState `json:"state"`
	Since    time.Time   `json:"since"`
	Until    *time.Time  `json:"until,omitempty"`
	Removals int         `json:"recentRemovals"`
	Reason   string      `json:"reason,omitempty"`
	// Cordoned: the operator cordoned the target (no new service placed
	// there); Drained: drained (its services moved away, not used).
	Cordoned bool `json:"cordoned,omitempty"`
	Drained  bool `json:"drained,omitempty"`
}

// Decider is the loop's pure decision step: it holds the membership table
// and the scheduling state, takes observations with the current time as
// data, and returns what to do. It does no I/O and reads no clock.
type Decider struct {
	t       Timing
	started time.Time

	members    map[string]*member
	modelsHash string
	haveModels bool
	haveInfra  bool // a first snapshot arrived
	keyStale   bool // membership, target data or models changed since key

	key         string
	deployedKey string
	check       bool // a check was asked for (models reloaded, resync)
	checkNew    bool // check was just asked for: start its debounce once
	dirtySince  time.Time
	lastChange  time.Time
	causes      []string
	reconcile   map[string]bool
	eventSince  time.Time // earliest observation behind the pending change

	running    bool
	runOrder   *DeployOrder
	failedKey  string
	retryAt    time.Time
	attempt    int
	bo         *backoff.ExponentialBackOff
	firstAfter time.Time

	// The operator's commands.
	cordoned map[string]bool
	drained  map[string]bool
	paused   bool
	standby  bool // another coordinator leads (ObsLeadership)
	force    bool
}

// NewDecider returns a decider with the given timing (zero fields take the
// defaults of DefaultTiming).
func NewDecider(t Timing) *Decider {
	t = t.withDefaults()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = t.BackoffInitial
	bo.MaxInterval = t.BackoffMax
	bo.Multiplier = t.BackoffMultiplier
	bo.RandomizationFactor = t.BackoffRandomization
	bo.MaxElapsedTime = 0 // retry until a newer change supersedes
	bo.Reset()
	return &Decider{t: t, members: map[string]*member{}, reconcile: map[string]bool{}, bo: bo,
		cordoned: map[string]bool{}, drained: map[string]bool{}}
}

// Timing returns the decider's effective timing.
func (d *Decider) Timing() Timing { return d.t }

// Decide applies one observation at time now and returns the action.
func (d *Decider) Decide(obs Observation, now time.Time) Action {
	if d.started.IsZero() {
		d.started = now
	}
	var act Action
	switch obs.Kind {
	case ObsSnapshot:
		d.haveInfra, d.keyStale = true, true
		d.observe(obs.Snapshot, now, &act)
	case ObsModels:
		if !d.haveModels || obs.ModelsHash != d.modelsHash {
			if d.haveModels {
				d.causes = append(d.causes, "models changed")
			}
			d.modelsHash = obs.ModelsHash
			d.haveModels = true
			d.keyStale = true
		}
	case ObsResync:
		if d.retryAt.IsZero() && !d.running {
			if !d.check {
				d.checkNew = true
			}
			d.check = true
			d.causes = append(d.causes, "resync")
		}
	case ObsDeployDone:
		d.done(obs, now)
	case ObsControl:
		d.control(obs.Control, now)
	case ObsLeadership:
		if obs.Leading && d.standby {
			// Another coordinator may have deployed meanwhile: deploy
			// whatever differs from what the targets run.
			d.deployedKey = ""
			d.check = true
			d.causes = append(d.causes, "this coordinator took over as the leader")
		}
		d.standby = !obs.Leading
	}
	d.advance(now, &act)
	d.schedule(now, &act)
	return act
}

func (d *Decider) change(act *Action, m *member, name string, to MemberState, reason string, now time.Time) {
	act.Changes = append(act.Changes, MemberChange{Target: name, From: m.state, To: to, Reason: reason, At: now})
	if (m.state == MemberUp || m.state == MemberLeaving) && to == MemberDown {
		d.causes = append(d.causes, fmt.Sprintf("target %s removed (%s)", name, reason))
	}
	if to == MemberUp && m.state != MemberLeaving {
		d.causes = append(d.causes, fmt.Sprintf("target %s admitted", name))
		d.reconcile[name] = true
	}
	if to == MemberDown {
		delete(d.reconcile, name)
	}
	m.state, m.since, m.reason = to, now, reason
	m.deadline = time.Time{}
	m.lost = false
	d.keyStale = true
}

func (d *Decider) observe(s discovery.Snapshot, now time.Time, act *Action) {
	reasons := map[string]discovery.Event{}
	at := map[string]time.Time{}
	for _, e := range s.Events {
		if !e.At.IsZero() && !e.At.After(now) {
			at[e.Target] = e.At
		}
		if e.Kind == discovery.EventRemoved {
			reasons[e.Target] = e
		}
		if e.Kind == discovery.EventChanged {
			if m := d.members[e.Target]; m != nil && m.state == MemberUp {
				d.causes = append(d.causes, fmt.Sprintf("target %s changed", e.Target))
			}
		}
	}
	for name, t := range s.Infrastructure {
		m := d.members[name]
		if m == nil {
			m = &member{state: MemberDown}
			d.members[name] = m
			m.target = t
			d.change(act, m, name, MemberUp, "new target", now)
			continue
		}
		m.target = t
		switch m.state {
		case MemberLeaving:
			// Back within the grace period: the removal is cancelled but
			// counted, so a machine that keeps blinking is seen as flapping.
			m.removals = append(m.removals, now)
			d.change(act, m, name, MemberUp, "returned within grace period", now)
		case MemberDown:
			p := d.stabilisation(m, now)
			d.change(act, m, name, MemberProbation, fmt.Sprintf("returned; stable for %s before use", p), now)
			m.deadline = now.Add(p)
		}
	}
	for _, name := range sortedMembers(d.members) {
		m := d.members[name]
		if _, ok := s.Infrastructure[name]; ok {
			continue
		}
		ev, ok := reasons[name]
		reason, graceful := ev.Reason, ev.Graceful()
		if !ok {
			reason = "missing from discovery"
		}
		seen, ok := at[name]
		if !ok {
			seen = now
		}
		switch m.state {
		case MemberUp:
			if graceful || d.t.RemoveGrace <= 0 {
				m.removals = append(m.removals, now)
				d.eventSince = earlier(d.eventSince, seen)
				d.change(act, m, name, MemberDown, reason, now)
				m.lost = !graceful
			} else {
				d.change(act, m, name, MemberLeaving, reason, now)
				m.deadline = now.Add(d.t.RemoveGrace)
				m.lostAt = seen
			}
		case MemberLeaving:
			if graceful {
				m.removals = append(m.removals, now)
				d.eventSince = earlier(d.eventSince, m.lostAt)
				d.change(act, m, name, MemberDown, reason, now)
			}
		case MemberProbation:
			m.removals = append(m.removals, now)
			d.change(act, m, name, MemberDown, reason, now)
			m.lost = !graceful
		}
	}
}

// stabilisation returns how long a returning target must stay present
// before it is used again: Stabilise after one recent removal; when it was
// removed at least twice within FlapWindow it is flapping and waits
// FlapStabilise, doubled for every further removal, capped at MaxStabilise.
func (d *Decider) stabilisation(m *member, now time.Time) time.Duration {
	d.prune(m, now)
	k := len(m.removals)
	if k <= 1 {
		return d.t.Stabilise
	}
	p := d.t.FlapStabilise
	for i := 2; i < k && p < d.t.MaxStabilise; i++ {
		p *= 2
	}
	if p > d.t.MaxStabilise {
		p = d.t.MaxStabilise
	}
	return p
}

func (d *Decider) prune(m *member, now time.Time) {
	keep := m.removals[:0]
	for _, r := range m.removals {
		if now.Sub(r) < d.t.FlapWindow {
			keep = append(keep, r)
		}
	}
	m.removals = keep
}

func (d *Decider) done(obs Observation, now time.Time) {
	if !d.running {
		return
	}
	d.running = false
	order := d.runOrder
	d.runOrder = nil
	if obs.Err == nil {
		d.deployedKey = obs.Key
		d.failedKey, d.retryAt, d.attempt = "", time.Time{}, 0
		d.bo.Reset()
		return
	}
	// Failed: the targets still need reconciling, and the same input is
	// retried after a backoff unless a newer change supersedes it.
	for _, t := range order.Reconcile {
		if m := d.members[t]; m != nil && m.state == MemberUp {
			d.reconcile[t] = true
		}
	}
	d.failedKey = obs.Key
	d.attempt++
	d.retryAt = now.Add(d.bo.NextBackOff())
	if d.dirtySince.IsZero() {
		d.dirtySince = order.Since
	}
	d.causes = append(order.Causes, d.causes...)
}

func (d *Decider) advance(now time.Time, act *Action) {
	for _, name := range sortedMembers(d.members) {
		m := d.members[name]
		switch m.state {
		case MemberLeaving:
			if !now.Before(m.deadline) {
				m.removals = append(m.removals, now)
				d.eventSince = earlier(d.eventSince, m.lostAt)
				d.change(act, m, name, MemberDown, m.reason+"; grace period over", now)
				m.lost = true
			}
		case MemberProbation:
			if !now.Before(m.deadline) {
				d.change(act, m, name, MemberUp, "stable", now)
			}
		}
		d.prune(m, now)
		// Forget a target gone for longer than FlapWindow: the table does
		// not grow without bound, and a machine back after that long is
		// treated as new (its stale services are still reconciled).
		if m.state == MemberDown && len(m.removals) == 0 && now.Sub(m.since) >= d.t.FlapWindow {
			delete(d.members, name)
		}
	}
}

// used returns the targets given to the policy: Up and Leaving ones, but
// not the drained ones.
func (d *Decider) used() model.Infrastructure {
	infra := model.Infrastructure{}
	for name, m := range d.members {
		if (m.state == MemberUp || m.state == MemberLeaving) && !d.drained[name] {
			infra[name] = m.target
		}
	}
	return infra
}

// Key hashes the models hash and the used infrastructure canonically.
func inputKey(modelsHash string, infra model.Infrastructure) string {
	b, err := json.Marshal(infra) // encoding/json sorts map keys
	if err != nil {
		b = []byte(fmt.Sprint(err))
	}
	h := sha256.New()
	h.Write([]byte(modelsHash))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (d *Decider) schedule(now time.Time, act *Action) {
	key := d.key
	if d.keyStale || d.key == "" {
		key = inputKey(d.modelsHash, d.used())
		d.keyStale = false
	}
	// The debounce starts when the input changes or a check is first asked
	// for; renewing it on every step while a check is pending would push a
	// real change that arrives meanwhile out to MaxDelay.
	if key != d.key || d.checkNew {
		d.checkNew = false
		d.key = key
		d.lastChange = now
		if d.dirtySince.IsZero() {
			d.dirtySince = now
		}
		if d.failedKey != "" && key != d.failedKey {
			// A newer change supersedes the pending retry.
			d.failedKey, d.retryAt, d.attempt = "", time.Time{}, 0
			d.bo.Reset()
			d.dirtySince = now
		}
	}
	act.Wake = d.memberDeadline()
	// Nothing is deployed before the models are loaded and the source has
	// reported once: an empty infrastructure is not "no machines".
	need := d.haveModels && d.haveInfra && (d.key != d.deployedKey || d.check)
	if !need {
		d.dirtySince = time.Time{}
		d.eventSince = time.Time{}
		d.causes = nil
		return
	}
	if d.running || d.paused || d.standby {
		return
	}
	due := d.started.Add(d.t.InitialSettle)
	if d.failedKey != "" && d.failedKey == d.key {
		due = later(due, d.retryAt)
	} else {
		db := d.lastChange.Add(d.t.Debounce)
		if max := d.dirtySince.Add(d.t.MaxDelay); max.Before(db) {
			db = max
		}
		due = later(due, db)
	}
	if now.Before(due) {
		act.Wake = earlier(act.Wake, due)
		return
	}
	order := &DeployOrder{
		Key:            d.key,
		Infrastructure: d.used(),
		Causes:         dedup(d.causes),
		Since:          since(d.eventSince, d.dirtySince),
		Attempt:        d.attempt,
		Force:          d.force,
	}
	for t := range d.cordoned {
		if _, ok := order.Infrastructure[t]; ok {
			order.Cordon = append(order.Cordon, t)
		}
	}
	sort.Strings(order.Cordon)
	for t := range d.reconcile {
		order.Reconcile = append(order.Reconcile, t)
	}
	sort.Strings(order.Reconcile)
	for _, name := range sortedMembers(d.members) {
		if m := d.members[name]; m.state == MemberDown && m.lost {
			order.Lost = append(order.Lost, name)
		}
	}
	d.reconcile = map[string]bool{}
	d.causes = nil
	d.check, d.checkNew, d.force = false, false, false
	d.dirtySince = time.Time{}
	d.eventSince = time.Time{}
	d.running = true
	d.runOrder = order
	act.Deploy = order
}

func (d *Decider) memberDeadline() time.Time {
	var w time.Time
	for _, m := range d.members {
		if m.state == MemberLeaving || m.state == MemberProbation {
			w = earlier(w, m.deadline)
		}
	}
	return w
}

// Members returns the membership table, sorted by target.
func (d *Decider) Members() []MemberStatus {
	out := make([]MemberStatus, 0, len(d.members))
	for _, name := range sortedMembers(d.members) {
		m := d.members[name]
		st := MemberStatus{Target: name, State: m.state, Since: m.since, Removals: len(m.removals), Reason: m.reason,
			Cordoned: d.cordoned[name], Drained: d.drained[name]}
		if !m.deadline.IsZero() {
			dl := m.deadline
			st.Until = &dl
		}
		out = append(out, st)
	}
	return out
}

// CheckControl says whether c can be applied: its target must be known
// (in the membership table), a redeploy needs the loop not paused.
func (d *Decider) CheckControl(c Control) error {
	switch c.Op {
	case ControlCordon, ControlDrain, ControlUncordon:
		if c.Target == "" {
			return fmt.Errorf("%s: no target given", c.Op)
		}
		if d.members[c.Target] == nil && !d.cordoned[c.Target] {
			return fmt.Errorf("%s: unknown target %q (known: %v)", c.Op, c.Target, sortedMembers(d.members))
		}
	case ControlRedeploy:
		if d.paused {
			return errors.New("redeploy: the loop is paused (resume first)")
		}
		if d.standby {
			return errors.New("redeploy: this coordinator stands by (another one leads)")
		}
	case ControlPause, ControlResume:
	default:
		return fmt.Errorf("unknown command %q", c.Op)
	}
	return nil
}

func (d *Decider) control(c Control, now time.Time) {
	switch c.Op {
	case ControlCordon:
		d.cordoned[c.Target] = true
	case ControlDrain:
		d.cordoned[c.Target] = true
		if !d.drained[c.Target] {
			d.drained[c.Target] = true
			d.keyStale = true
			d.causes = append(d.causes, fmt.Sprintf("target %s drained by the operator", c.Target))
		}
	case ControlUncordon:
		delete(d.cordoned, c.Target)
		if d.drained[c.Target] {
			delete(d.drained, c.Target)
			d.keyStale = true
			d.causes = append(d.causes, fmt.Sprintf("target %s uncordoned by the operator", c.Target))
		}
	case ControlPause:
		d.paused = true
	case ControlResume:
		d.paused = false
	case ControlRedeploy:
		d.force = true
		if !d.check {
			d.checkNew = true
		}
		d.check = true
		d.causes = append(d.causes, "redeploy asked by the operator")
		if d.failedKey != "" {
			d.retryAt = now
		}
	}
}

// Standby reports whether another coordinator leads: this one deploys
// nothing until it is elected.
func (d *Decider) Standby() bool { return d.standby }

// Paused reports whether the operator paused the loop.
func (d *Decider) Paused() bool { return d.paused }

// RetryAt returns when a failed deploy is retried (zero: none pending).
func (d *Decider) RetryAt() time.Time { return d.retryAt }

func sortedMembers(m map[string]*member) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// earlier returns the earlier of two times, a zero time counting as "never".
func earlier(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	if b.IsZero() || a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func dedup(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// since dates a change: from the observation behind it when there is one
// (a resync or reload that happened first must not back-date a machine's
// loss), else from when the input became dirty.
func since(event, dirty time.Time) time.Time {
	if !event.IsZero() {
		return event
	}
	return dirty
}
