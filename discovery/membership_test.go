package discovery

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

func obs(inst, host, hash, endpoint string) Observation {
	return Observation{
		Instance: inst,
		Target:   &model.Target{Name: host, Properties: map[string]any{"hostname": host}},
		Hash:     hash, Endpoint: endpoint, TTL: 120 * time.Second,
	}
}

type step struct {
	at    time.Duration
	put   *Observation
	probe *bool
	inst  string
	want  []string      // "kind target reason"
	due   time.Duration // when set: the time of every event
}

func evStrings(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Kind)+" "+e.Target+" "+e.Reason)
	}
	return out
}

func TestMembership(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	o1 := obs("disnix-a", "a", "h1", "")
	o1b := obs("disnix-a", "a", "h2", "")
	alive := Observation{Instance: "disnix-a", TTL: 120 * time.Second}
	bye := Observation{Instance: "disnix-a", Goodbye: true}
	oe := obs("disnix-b", "b", "h1", "http://10.0.0.2:9001")
	cfg := MembershipConfig{NoAnswerTimeout: 6 * time.Second, GoodbyeGrace: time.Second, ProbeFailures: 2}
	cases := []struct {
		name  string
		steps []step
	}{
		{"join then change then goodbye", []step{
			{at: 0, put: &o1, want: []string{"added a announced"}},
			{at: time.Second, put: &o1},
			{at: 2 * time.Second, put: &o1b, want: []string{"changed a txt-changed"}},
			{at: 3 * time.Second, put: &bye},
			{at: 3900 * time.Millisecond},
			{at: 4 * time.Second, want: []string{"removed a goodbye"}},
		}},
		{"goodbye corrected by a re-announcement", []step{
			{at: 0, put: &o1, want: []string{"added a announced"}},
			{at: time.Second, put: &bye},
			{at: 1500 * time.Millisecond, put: &alive},
			{at: 3 * time.Second},
		}},
		{"silence removes after the no-answer timeout", []step{
			{at: 0, put: &o1, want: []string{"added a announced"}},
			{at: 2 * time.Second, put: &alive},
			{at: 7 * time.Second},
			{at: 8 * time.Second, want: []string{"removed a no-answer"}, due: 8 * time.Second},
		}},
		// A removal noticed late (a busy browser loop) is dated when it
		// was due, not when it was noticed.
		{"a late look dates the removal at its deadline", []step{
			{at: 0, put: &o1, want: []string{"added a announced"}},
			{at: 2 * time.Second, put: &alive},
			{at: 9500 * time.Millisecond, want: []string{"removed a no-answer"}, due: 8 * time.Second},
		}},
		{"ttl expiry before the no-answer timeout", []step{
			{at: 0, put: &Observation{Instance: "disnix-a", Target: o1.Target, Hash: "h1", TTL: 2 * time.Second}, want: []string{"added a announced"}},
			{at: 3 * time.Second, want: []string{"removed a ttl-expired"}, due: 2 * time.Second},
		}},
		{"probe failures remove, hysteresis until a probe succeeds", []step{
			{at: 0, put: &oe, want: []string{"added b announced"}},
			{at: time.Second, probe: &no, inst: "disnix-b"},
			{at: 2 * time.Second, probe: &no, inst: "disnix-b", want: []string{"removed b probe-failed"}},
			{at: 2500 * time.Millisecond, put: &oe},
			{at: 3 * time.Second, probe: &yes, inst: "disnix-b", want: []string{"added b probe-ok"}},
		}},
		{"a probe success after a partition keeps the record fresh", []step{
			{at: 0, put: &oe, want: []string{"added b announced"}},
			{at: time.Second, probe: &no, inst: "disnix-b"},
			{at: 2 * time.Second, probe: &no, inst: "disnix-b", want: []string{"removed b probe-failed"}},
			{at: 5900 * time.Millisecond, probe: &yes, inst: "disnix-b", want: []string{"added b probe-ok"}},
			{at: 6 * time.Second}, // the no-answer deadline of the silence before
			{at: 11 * time.Second, put: &oe},
		}},
		// Multicast lost (a flooded or starved receiver), the endpoint
		// answers: the target stays; once the probes fail too it goes.
		{"answering probes keep a silent target", []step{
			{at: 0, put: &oe, want: []string{"added b announced"}},
			{at: 5 * time.Second, probe: &yes, inst: "disnix-b"},
			{at: 10 * time.Second, probe: &yes, inst: "disnix-b"},
			{at: 15 * time.Second, probe: &yes, inst: "disnix-b"},
			{at: 20 * time.Second},
			{at: 21 * time.Second, want: []string{"removed b no-answer"}, due: 21 * time.Second},
		}},
		{"a success resets the failure count", []step{
			{at: 0, put: &oe, want: []string{"added b announced"}},
			{at: time.Second, probe: &no, inst: "disnix-b"},
			{at: 2 * time.Second, probe: &yes, inst: "disnix-b"},
			{at: 3 * time.Second, probe: &no, inst: "disnix-b"},
		}},
		{"answers without TXT from unknown instances are ignored", []step{
			{at: 0, put: &alive},
			{at: 10 * time.Second},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runSteps(t, NewMembership(cfg), c.steps)
		})
	}
}

// runSteps feeds the steps to m (times from t0 = Unix 1000) and checks the
// events of each.
func runSteps(t *testing.T, m *Membership, steps []step) {
	t.Helper()
	t0 := time.Unix(1000, 0)
	for i, s := range steps {
		now := t0.Add(s.at)
		var evs []Event
		if s.put != nil {
			evs = append(evs, m.Put(*s.put, now)...)
		}
		if s.probe != nil {
			evs = append(evs, m.ProbeResult(s.inst, *s.probe, now)...)
		}
		if at, ok := m.NextDeadline(); ok && !at.After(now) {
			evs = append(evs, m.Advance(now)...)
		}
		if got := evStrings(evs); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d (t=%v): events %q, want %q", i, s.at, got, s.want)
		}
		for _, e := range evs {
			if s.due != 0 && !e.At.Equal(t0.Add(s.due)) {
				t.Errorf("step %d (t=%v): %s at %v, want %v", i, s.at, e.Kind, e.At.Sub(t0), s.due)
			}
		}
	}
}

// TestMembershipProbedEndpoints: with probed endpoints, silence alone
// never removes a target that has an endpoint; failed probes, a goodbye or
// the records' TTL do, and an endpoint-less target still goes on silence.
func TestMembershipProbedEndpoints(t *testing.T) {
	t.Parallel()
	no := false
	oe := obs("disnix-b", "b", "h1", "http://10.0.0.2:9001")
	short := oe
	short.TTL = 30 * time.Second
	plain := obs("disnix-a", "a", "h1", "")
	bye := Observation{Instance: "disnix-b", Goodbye: true}
	cfg := MembershipConfig{NoAnswerTimeout: 6 * time.Second, GoodbyeGrace: time.Second, ProbeFailures: 2, ProbedEndpoints: true}
	cases := []struct {
		name  string
		steps []step
	}{
		{"silence keeps it, failed probes remove it", []step{
			{at: 0, put: &oe, want: []string{"added b announced"}},
			{at: 20 * time.Second},
			{at: 21 * time.Second, probe: &no, inst: "disnix-b"},
			{at: 22 * time.Second, probe: &no, inst: "disnix-b", want: []string{"removed b probe-failed"}},
		}},
		{"the TTL still expires", []step{
			{at: 0, put: &short, want: []string{"added b announced"}},
			{at: 29 * time.Second},
			{at: 30 * time.Second, want: []string{"removed b ttl-expired"}, due: 30 * time.Second},
		}},
		{"a goodbye still removes", []step{
			{at: 0, put: &oe, want: []string{"added b announced"}},
			{at: 10 * time.Second, put: &bye},
			{at: 11 * time.Second, want: []string{"removed b goodbye"}},
		}},
		{"a target without endpoint goes on silence", []step{
			{at: 0, put: &plain, want: []string{"added a announced"}},
			{at: 6 * time.Second, want: []string{"removed a no-answer"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runSteps(t, NewMembership(cfg), c.steps)
		})
	}
}

func TestMembershipInfrastructureAgentURL(t *testing.T) {
	t.Parallel()
	m := NewMembership(MembershipConfig{})
	now := time.Unix(0, 0)
	m.Put(obs("disnix-b", "b", "h", "http://10.0.0.2:9001"), now)
	m.Put(obs("disnix-z", "b", "h", ""), now) // same target name: first instance wins
	infra := m.Infrastructure()
	if len(infra) != 1 || infra["b"].Properties[AgentURLProperty] != "http://10.0.0.2:9001" {
		t.Fatalf("infrastructure %v", infra["b"].Properties)
	}
}

// TestMembershipHostnameConflict covers the second half of finding 1 of
// the trust review: an instance claiming the hostname of a present target
// with another endpoint replaced its agentURL silently (the instance that
// sorted first won). Now the first claim holds the hostname, the second is
// a conflict, and it takes over only when the first leaves.
func TestMembershipHostnameConflict(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	genuine := obs("disnix-machine1", "machine1", "h1", "http://10.0.0.1:9001")
	impostor := obs("disnix-0evil", "machine1", "h9", "http://10.0.0.66:18080") // sorts first
	byeGenuine := Observation{Instance: genuine.Instance, Goodbye: true}
	byeImpostor := Observation{Instance: impostor.Instance, Goodbye: true}
	cfg := MembershipConfig{NoAnswerTimeout: time.Minute, GoodbyeGrace: time.Second}
	type st struct {
		at        time.Duration
		put       *Observation
		want      []string
		agentURL  string // the agentURL of machine1 afterwards ("": absent)
		conflicts int
	}
	cases := []struct {
		name  string
		steps []st
	}{
		{"the newcomer never replaces the holder", []st{
			{at: 0, put: &genuine, want: []string{"added machine1 announced"}, agentURL: genuine.Endpoint},
			{at: time.Second, put: &impostor, want: []string{"conflict machine1 hostname-conflict"}, agentURL: genuine.Endpoint, conflicts: 1},
			{at: 2 * time.Second, put: &impostor, agentURL: genuine.Endpoint, conflicts: 1},
			{at: 3 * time.Second, put: &byeImpostor, agentURL: genuine.Endpoint, conflicts: 1},
			{at: 4 * time.Second, agentURL: genuine.Endpoint},
		}},
		{"the other takes over when the holder leaves", []st{
			{at: 0, put: &genuine, want: []string{"added machine1 announced"}, agentURL: genuine.Endpoint},
			{at: time.Second, put: &impostor, want: []string{"conflict machine1 hostname-conflict"}, agentURL: genuine.Endpoint, conflicts: 1},
			{at: 2 * time.Second, put: &byeGenuine, agentURL: genuine.Endpoint, conflicts: 1},
			{at: 3 * time.Second, want: []string{"changed machine1 conflict-takeover"}, agentURL: impostor.Endpoint},
			{at: 4 * time.Second, put: &genuine, want: []string{"conflict machine1 hostname-conflict"}, agentURL: impostor.Endpoint, conflicts: 1},
		}},
		{"the first seen holds even when it sorts last", []st{
			{at: 0, put: &impostor, want: []string{"added machine1 announced"}, agentURL: impostor.Endpoint},
			{at: time.Second, put: &genuine, want: []string{"conflict machine1 hostname-conflict"}, agentURL: impostor.Endpoint, conflicts: 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := NewMembership(cfg)
			for i, s := range c.steps {
				now := t0.Add(s.at)
				var evs []Event
				if s.put != nil {
					evs = append(evs, m.Put(*s.put, now)...)
				}
				if at, ok := m.NextDeadline(); ok && !at.After(now) {
					evs = append(evs, m.Advance(now)...)
				}
				if got := evStrings(evs); !reflect.DeepEqual(got, s.want) {
					t.Fatalf("step %d: events %q, want %q", i, got, s.want)
				}
				var url any
				if tg := m.Infrastructure()["machine1"]; tg != nil {
					url = tg.Properties[AgentURLProperty]
				}
				if url != s.agentURL && !(url == nil && s.agentURL == "") {
					t.Fatalf("step %d: agentURL %v, want %q", i, url, s.agentURL)
				}
				cs := m.Conflicts()
				if len(cs) != s.conflicts {
					t.Fatalf("step %d: conflicts %+v, want %d", i, cs, s.conflicts)
				}
				for _, cf := range cs {
					if cf.Hostname != "machine1" || cf.Kept.Endpoint != s.agentURL || cf.Ignored.Endpoint == s.agentURL || cf.Reason != ConflictFirstSeen {
						t.Fatalf("step %d: conflict %+v", i, cf)
					}
				}
			}
		})
	}
}

func TestDebouncer(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	d := &Debouncer{Quiet: 250 * time.Millisecond, MaxDelay: time.Second}
	if _, ok := d.Deadline(); ok {
		t.Fatal("empty debouncer has a deadline")
	}
	e := []Event{{Kind: EventAdded, Target: "a"}}
	// A steady stream every 200 ms is cut at MaxDelay.
	for i := 0; i < 5; i++ {
		now := t0.Add(time.Duration(i) * 200 * time.Millisecond)
		if _, ok := d.Take(now); ok {
			t.Fatalf("burst released early at %v", now.Sub(t0))
		}
		d.Add(e, now)
	}
	if at, _ := d.Deadline(); !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline %v, want 1s", at.Sub(t0))
	}
	evs, ok := d.Take(t0.Add(time.Second))
	if !ok || len(evs) != 5 {
		t.Fatalf("got %d events, %v", len(evs), ok)
	}
	d.Add(e, t0.Add(2*time.Second))
	if _, ok := d.Take(t0.Add(2*time.Second + 249*time.Millisecond)); ok {
		t.Fatal("released before the quiet period")
	}
	if evs, ok := d.Take(t0.Add(2*time.Second + 250*time.Millisecond)); !ok || len(evs) != 1 {
		t.Fatal("not released after the quiet period")
	}
}

// TestMassTimeouts: probe timeouts are held back while more than half of
// the probed endpoints (at least 3) timed out within the window.
func TestMassTimeouts(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	type to struct {
		inst string
		at   time.Duration
		n    int
		hold bool
	}
	cases := []struct {
		name string
		seq  []to
	}{
		{"one machine of ten times out", []to{{"a", 0, 10, false}, {"a", time.Second, 10, false}, {"a", 2 * time.Second, 10, false}}},
		{"most of the fleet at once", []to{{"a", 0, 5, false}, {"b", 100 * time.Millisecond, 5, false}, {"c", 200 * time.Millisecond, 5, true}, {"a", time.Second, 5, true}, {"d", time.Second, 5, true}}},
		{"half is not most", []to{{"a", 0, 6, false}, {"b", 0, 6, false}, {"c", 0, 6, false}, {"c", time.Second, 6, false}}},
		{"two machines of two are not enough evidence", []to{{"a", 0, 2, false}, {"b", 0, 2, false}, {"a", time.Second, 2, false}}},
		{"old timeouts leave the window", []to{{"a", 0, 4, false}, {"b", 0, 4, false}, {"c", 0, 4, true}, {"c", 5 * time.Second, 4, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mt := &massTimeouts{window: 2800 * time.Millisecond}
			for i, s := range c.seq {
				if got := mt.hold(s.inst, t0.Add(s.at), s.n); got != s.hold {
					t.Fatalf("timeout %d (%s at %v of %d): held %v, want %v", i, s.inst, s.at, s.n, got, s.hold)
				}
			}
		})
	}
}

// TestMembershipScopedSettle: an observation or probe result compares only
// the hostnames it can affect; the events are those of a comparison of the
// whole table, over random sequences with renames, conflicts, goodbyes,
// probes and deadlines.
func TestMembershipScopedSettle(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(14, 2026))
	cfg := MembershipConfig{NoAnswerTimeout: 6 * time.Second, GoodbyeGrace: time.Second, ProbeFailures: 2, ProbedEndpoints: true}
	for seq := 0; seq < 200; seq++ {
		scoped, whole := NewMembership(cfg), NewMembership(cfg)
		now := time.Unix(1000, 0)
		for op := 0; op < 60; op++ {
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			inst := fmt.Sprintf("i%d", rng.IntN(6))
			var got, want []Event
			switch rng.IntN(5) {
			case 0, 1:
				ep := ""
				if rng.IntN(2) == 0 {
					ep = fmt.Sprintf("http://10.0.0.%d:9100", rng.IntN(2))
				}
				o := obs(inst, fmt.Sprintf("h%d", rng.IntN(3)), fmt.Sprintf("x%d", rng.IntN(2)), ep)
				got = scoped.Put(o, now)
				want = whole.settle(nil, func() []Event { return whole.put(o, now) }, now)
			case 2:
				o := Observation{Instance: inst, Goodbye: rng.IntN(2) == 0, TTL: 10 * time.Second}
				got = scoped.Put(o, now)
				want = whole.settle(nil, func() []Event { return whole.put(o, now) }, now)
			case 3:
				ok := rng.IntN(2) == 0
				got = scoped.ProbeResult(inst, ok, now)
				want = whole.settle(nil, func() []Event { return whole.probeResult(inst, ok, now) }, now)
			default:
				got, want = scoped.Advance(now), whole.Advance(now)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("sequence %d op %d: events %v, the whole table's %v", seq, op, got, want)
			}
			if g, w := scoped.Conflicts(), whole.Conflicts(); !reflect.DeepEqual(g, w) {
				t.Fatalf("sequence %d op %d: conflicts %v, want %v", seq, op, g, w)
			}
			if !reflect.DeepEqual(scoped.conflicted, whole.conflicted) {
				t.Fatalf("sequence %d op %d: reported conflicts %v, want %v", seq, op, scoped.conflicted, whole.conflicted)
			}
		}
	}
}

// BenchmarkMembershipAnswer: one answer (an unchanged observation) into a
// table of 100 machines, as every browse round brings 100 of them.
func BenchmarkMembershipAnswer(b *testing.B) {
	m := NewMembership(MembershipConfig{ProbedEndpoints: true})
	now := time.Unix(1000, 0)
	var all []Observation
	for i := 0; i < 100; i++ {
		o := obs(fmt.Sprintf("disnix-m%d", i), fmt.Sprintf("m%d", i), "h", fmt.Sprintf("https://10.0.%d.%d:9100", i/250, i%250))
		all = append(all, o)
		m.Put(o, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Put(all[i%len(all)], now)
	}
}
