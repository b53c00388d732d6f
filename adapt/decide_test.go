package adapt

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testTiming() Timing {
	t := DefaultTiming()
	t.InitialSettle = -1
	t.BackoffRandomization = -1
	return t
}

func infraOf(names ...string) model.Infrastructure {
	infra := model.Infrastructure{}
	for _, n := range names {
		infra[n] = &model.Target{Name: n, Properties: map[string]any{"hostname": n}}
	}
	return infra
}

// sim drives a Decider through scripted observations on a simulated
// timeline; deploys complete after deployTime with the outcome of fail.
type sim struct {
	t          *testing.T
	d          *Decider
	now        time.Time
	wake       time.Time
	deploys    []*DeployOrder
	deployedAt []time.Time
	running    *DeployOrder
	doneAt     time.Time
	deployTime time.Duration
	fail       func(n int) error
}

func newSim(t *testing.T, tm Timing) *sim {
	s := &sim{t: t, d: NewDecider(tm), now: t0, deployTime: 300 * time.Millisecond}
	s.obs(Observation{Kind: ObsModels, ModelsHash: "m1"})
	return s
}

func (s *sim) obs(o Observation) Action {
	a := s.d.Decide(o, s.now)
	s.wake = a.Wake
	if a.Deploy != nil {
		if s.running != nil {
			s.t.Fatalf("%v: deploy ordered while one is running", s.now.Sub(t0))
		}
		s.deploys = append(s.deploys, a.Deploy)
		s.deployedAt = append(s.deployedAt, s.now)
		s.running = a.Deploy
		s.doneAt = s.now.Add(s.deployTime)
	}
	return a
}

func (s *sim) snap(names ...string) Action {
	return s.obs(Observation{Kind: ObsSnapshot, Snapshot: Snapshot{Infrastructure: infraOf(names...), At: s.now}})
}

func (s *sim) leave(reason string, names ...string) Action {
	var evs []Event
	present := map[string]bool{}
	for _, n := range names {
		present[n] = true
	}
	for _, m := range s.d.Members() {
		if !present[m.Target] {
			evs = append(evs, Event{Kind: EventRemoved, Target: m.Target, Reason: reason, At: s.now})
		}
	}
	return s.obs(Observation{Kind: ObsSnapshot, Snapshot: Snapshot{Infrastructure: infraOf(names...), Events: evs, At: s.now}})
}

// run advances simulated time to end in 10 ms steps, firing wake-ups and
// completing deploys.
func (s *sim) run(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(10 * time.Millisecond)
		if s.running != nil && !s.now.Before(s.doneAt) {
			o := s.running
			s.running = nil
			var err error
			if s.fail != nil {
				err = s.fail(len(s.deploys))
			}
			s.obs(Observation{Kind: ObsDeployDone, Key: o.Key, Err: err})
		}
		if !s.wake.IsZero() && !s.now.Before(s.wake) {
			s.obs(Observation{Kind: ObsTick})
		}
	}
}

func TestDecideDebounceBurst(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.snap("a")
	s.run(50 * time.Millisecond)
	s.snap("a", "b")
	s.run(50 * time.Millisecond)
	s.snap("a", "b", "c")
	if len(s.deploys) != 0 {
		t.Fatalf("deployed during the burst")
	}
	s.run(2 * time.Second)
	if len(s.deploys) != 1 {
		t.Fatalf("got %d deploys, want 1", len(s.deploys))
	}
	if got := s.deployedAt[0].Sub(t0); got != 250*time.Millisecond {
		t.Errorf("deploy at %v, want 250ms (last change + debounce)", got)
	}
	if n := len(s.deploys[0].Infrastructure); n != 3 {
		t.Errorf("deploy has %d targets, want 3", n)
	}
	if got := s.deploys[0].Reconcile; fmt.Sprint(got) != "[a b c]" {
		t.Errorf("reconcile = %v, want new targets [a b c]", got)
	}
}

func TestDecideMaxDelay(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	for i := 0; i < 30; i++ {
		s.obs(Observation{Kind: ObsSnapshot, Snapshot: Snapshot{Infrastructure: model.Infrastructure{
			"a": {Name: "a", Properties: map[string]any{"load": i}}}}})
		s.run(100 * time.Millisecond)
	}
	if len(s.deploys) < 2 {
		t.Fatalf("continuous changes for 3 s gave %d deploys; the debounce must be capped", len(s.deploys))
	}
	if got := s.deployedAt[0].Sub(t0); got != time.Second {
		t.Errorf("first deploy at %v, want 1s (MaxDelay)", got)
	}
}

func TestDecideInitialSettle(t *testing.T) {
	t.Parallel()
	tm := testTiming()
	tm.InitialSettle = 2 * time.Second
	s := newSim(t, tm)
	s.snap("a")
	s.run(time.Second)
	s.snap("a", "b")
	s.run(3 * time.Second)
	if len(s.deploys) != 1 || s.deployedAt[0].Sub(t0) != 2*time.Second {
		t.Fatalf("deploys %d at %v, want one at 2s", len(s.deploys), s.deployedAt)
	}
}

func TestDecideRemovals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		reason    string
		back      time.Duration // >0: target returns after this long
		wantDelay time.Duration // from the removal to the deploy; <0: no deploy
		wantLost  []string      // the order's Lost: crashed targets, not probed again
	}{
		{name: "goodbye acts at once", reason: "goodbye", wantDelay: 150 * time.Millisecond},
		{name: "drain acts at once", reason: "drain", wantDelay: 150 * time.Millisecond},
		{name: "crash waits for grace", reason: "probe failed", wantDelay: 400 * time.Millisecond, wantLost: []string{"b"}},
		{name: "blip within grace is ignored", reason: "expired", back: 150 * time.Millisecond, wantDelay: -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, testTiming())
			s.snap("a", "b")
			s.run(time.Second)
			if len(s.deploys) != 1 {
				t.Fatalf("initial deploys = %d", len(s.deploys))
			}
			removed := s.now
			s.leave(c.reason, "a")
			if c.back > 0 {
				s.run(c.back)
				s.snap("a", "b")
			}
			s.run(5 * time.Second)
			if c.wantDelay < 0 {
				if len(s.deploys) != 1 {
					t.Fatalf("got %d redeploys, want none", len(s.deploys)-1)
				}
				return
			}
			if len(s.deploys) != 2 {
				t.Fatalf("got %d redeploys, want 1", len(s.deploys)-1)
			}
			if got := s.deployedAt[1].Sub(removed); got != c.wantDelay {
				t.Errorf("redeploy %v after the removal, want %v", got, c.wantDelay)
			}
			if !s.deploys[1].Since.Equal(removed) {
				t.Errorf("order answers a change since %v, want the removal at %v", s.deploys[1].Since.Sub(t0), removed.Sub(t0))
			}
			if _, ok := s.deploys[1].Infrastructure["b"]; ok {
				t.Errorf("removed target still in the deployed infrastructure")
			}
			if got := s.deploys[1].Lost; fmt.Sprint(got) != fmt.Sprint(c.wantLost) {
				t.Errorf("order's Lost = %v, want %v", got, c.wantLost)
			}
		})
	}
}

func TestDecideReturnNeedsStabilisation(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.snap("a", "b")
	s.run(time.Second)
	s.leave("goodbye", "a")
	s.run(time.Second)
	s.snap("a", "b")
	back := s.now
	if ms := s.d.Members(); ms[1].State != MemberProbation {
		t.Fatalf("returned target is %s, want probation", ms[1].State)
	}
	s.run(15 * time.Second)
	if len(s.deploys) != 3 {
		t.Fatalf("deploys = %d, want 3 (initial, removal, return)", len(s.deploys))
	}
	if got := s.deployedAt[2].Sub(back); got != 10*time.Second+150*time.Millisecond {
		t.Errorf("return used after %v, want Stabilise+Debounce", got)
	}
	if fmt.Sprint(s.deploys[2].Reconcile) != "[b]" {
		t.Errorf("returning target not reconciled: %v", s.deploys[2].Reconcile)
	}
}

// TestDecideFlapping: a machine flapping for 60 s with many up/down
// periods, graceful or not, causes at most 3 redeploys.
func TestDecideFlapping(t *testing.T) {
	t.Parallel()
	for _, up := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second, 5 * time.Second, 11 * time.Second, 15 * time.Second, 25 * time.Second} {
		for _, down := range []time.Duration{100 * time.Millisecond, 700 * time.Millisecond, 2 * time.Second, 6 * time.Second, 20 * time.Second} {
			for _, reason := range []string{"goodbye", "probe failed"} {
				t.Run(fmt.Sprintf("up%v/down%v/%s", up, down, reason), func(t *testing.T) {
					t.Parallel()
					s := newSim(t, testTiming())
					s.snap("a", "b", "c")
					s.run(time.Second)
					base := len(s.deploys)
					start := s.now
					for s.now.Sub(start) < 60*time.Second {
						s.leave(reason, "a", "b")
						s.run(down)
						s.snap("a", "b", "c")
						s.run(up)
					}
					if n := len(s.deploys) - base; n > 3 {
						t.Errorf("flapping for 60 s caused %d redeploys, want <= 3", n)
					}
				})
			}
		}
	}
}

func TestDecideRetryBackoffAndSupersede(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.fail = func(n int) error { return errors.New("activation failed") }
	s.snap("a")
	s.run(4 * time.Second)
	// first at 150ms, done 450ms; retry +1s = 1450, done 1750; +2s = 3750.
	want := []time.Duration{150 * time.Millisecond, 1450 * time.Millisecond, 3750 * time.Millisecond}
	if len(s.deploys) != len(want) {
		t.Fatalf("deploys at %v, want %v", s.deployedAt, want)
	}
	for i, w := range want {
		if got := s.deployedAt[i].Sub(t0); got != w {
			t.Errorf("attempt %d at %v, want %v", i, got, w)
		}
		if s.deploys[i].Attempt != i {
			t.Errorf("attempt number %d, want %d", s.deploys[i].Attempt, i)
		}
	}
	if s.d.RetryAt().IsZero() {
		t.Fatalf("no retry pending after failures")
	}
	// A newer change supersedes the pending retry (next one due 4s later).
	s.run(300 * time.Millisecond) // attempt 3 done at 4.05s, retry at 8.05s
	s.fail = nil
	s.snap("a", "b")
	changed := s.now
	s.run(time.Second)
	if len(s.deploys) != 4 {
		t.Fatalf("deploys = %d, want the superseding one", len(s.deploys))
	}
	if got := s.deployedAt[3].Sub(changed); got != 150*time.Millisecond {
		t.Errorf("superseding deploy after %v, want debounce only", got)
	}
	if s.deploys[3].Attempt != 0 || len(s.deploys[3].Infrastructure) != 2 {
		t.Errorf("superseding deploy = %+v", s.deploys[3])
	}
	s.run(10 * time.Second)
	if len(s.deploys) != 4 || !s.d.RetryAt().IsZero() {
		t.Errorf("retry still pending after success: %d deploys", len(s.deploys))
	}
}

func TestDecideChangeDuringDeploy(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.deployTime = 2 * time.Second
	s.snap("a")
	s.run(500 * time.Millisecond)
	s.snap("a", "b")
	s.run(500 * time.Millisecond)
	if len(s.deploys) != 1 {
		t.Fatalf("a deploy overlapped the running one")
	}
	s.run(2 * time.Second)
	if len(s.deploys) != 2 || len(s.deploys[1].Infrastructure) != 2 {
		t.Fatalf("change during the deploy not deployed afterwards")
	}
	if got := s.deployedAt[1].Sub(t0); got != 2150*time.Millisecond {
		t.Errorf("follow-up deploy at %v, want as soon as the first finished", got)
	}
}

func TestDecideModelsAndResync(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.snap("a")
	s.run(time.Second)
	s.obs(Observation{Kind: ObsModels, ModelsHash: "m1"})
	s.run(time.Second)
	if len(s.deploys) != 1 {
		t.Fatalf("reloading unchanged models deployed")
	}
	s.obs(Observation{Kind: ObsModels, ModelsHash: "m2"})
	s.run(time.Second)
	if len(s.deploys) != 2 || s.deploys[1].Causes[0] != "models changed" {
		t.Fatalf("models change: deploys %d", len(s.deploys))
	}
	s.obs(Observation{Kind: ObsResync})
	s.run(time.Second)
	if len(s.deploys) != 3 || s.deploys[2].Key != s.deploys[1].Key {
		t.Fatalf("resync must order a check with the same key")
	}
}

func TestDecideNoSnapshotNoDeploy(t *testing.T) {
	t.Parallel()
	d := NewDecider(testTiming())
	for _, o := range []Observation{{Kind: ObsModels, ModelsHash: "m"}, {Kind: ObsResync}, {Kind: ObsTick}} {
		if a := d.Decide(o, t0.Add(time.Hour)); a.Deploy != nil {
			t.Fatalf("deployed before the first snapshot")
		}
	}
}

func TestDecideNoModelsNoDeploy(t *testing.T) {
	t.Parallel()
	d := NewDecider(testTiming())
	a := d.Decide(Observation{Kind: ObsSnapshot, Snapshot: Snapshot{Infrastructure: infraOf("a")}}, t0.Add(time.Hour))
	if a.Deploy != nil {
		t.Fatal("deployed before the models were loaded")
	}
}

// TestGraceful: the loop acts at once on the typed reasons discovery and
// the drain check report for a confirmed leave, and on nothing else.
func TestGraceful(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]bool{discovery.ReasonGoodbye: true, discovery.ReasonDrain: true,
		discovery.ReasonTTLExpired: false, discovery.ReasonProbeFailed: false, discovery.ReasonNoAnswer: false, "": false} {
		if got := (Event{Kind: EventRemoved, Reason: reason}).Graceful(); got != want {
			t.Errorf("Graceful(%q) = %v", reason, got)
		}
	}
	if (Event{Kind: discovery.EventChanged, Reason: discovery.ReasonGoodbye}).Graceful() {
		t.Error("a change is not a leave")
	}
}

func TestDecideForgetsLongGoneTargets(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.snap("a", "b")
	s.run(time.Second)
	s.leave("goodbye", "a")
	s.run(11 * time.Minute)
	s.obs(Observation{Kind: ObsTick}) // the loop's resync ticks every few seconds
	if ms := s.d.Members(); len(ms) != 1 || ms[0].Target != "a" {
		t.Fatalf("members after 11 min = %+v, want b forgotten", ms)
	}
	n := len(s.deploys)
	s.snap("a", "b")
	s.run(time.Second)
	if len(s.deploys) != n+1 || fmt.Sprint(s.deploys[n].Reconcile) != "[b]" {
		t.Fatalf("a long-gone target is used at once and reconciled: %d deploys", len(s.deploys)-n)
	}
}

// TestDecideResyncDoesNotPostponeChange: a resync check pending when a
// machine says goodbye must not push the redeploy out to MaxDelay, nor date
// the change from the resync.
func TestDecideResyncDoesNotPostponeChange(t *testing.T) {
	t.Parallel()
	s := newSim(t, testTiming())
	s.snap("a", "b")
	s.run(time.Second)
	if len(s.deploys) != 1 {
		t.Fatalf("initial deploys = %d", len(s.deploys))
	}
	resync := s.now
	s.obs(Observation{Kind: ObsResync})
	s.run(50 * time.Millisecond)
	gone := s.now
	s.leave("goodbye", "a")
	s.run(2 * time.Second)
	if len(s.deploys) != 2 {
		t.Fatalf("got %d deploys after the resync and the goodbye, want 1", len(s.deploys)-1)
	}
	if got, want := s.deployedAt[1].Sub(resync), 200*time.Millisecond; got != want {
		t.Errorf("redeploy %v after the resync, want %v (goodbye + debounce)", got, want)
	}
	if !s.deploys[1].Since.Equal(gone) {
		t.Errorf("the order is dated %v, want the goodbye at %v", s.deploys[1].Since.Sub(t0), gone.Sub(t0))
	}
}
