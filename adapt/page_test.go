package adapt

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/adapt/visual"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

// TestDeployTimingsFromTheEvent: discovery saw a machine 2 s before the
// loop received the snapshot; the detection time is measured from the
// event, and the time from the loop's observation is reported apart.
func TestDeployTimingsFromTheEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	at := h.clock.Now().Add(-2 * time.Second)
	h.snap(infraOf("a"), Event{Kind: discovery.EventAdded, Target: "a", Reason: discovery.ReasonAnnounced, At: at})
	r := h.waitDeploy(5 * time.Second)
	if !r.EventAt.Equal(at) {
		t.Errorf("EventAt = %v, want the event's time %v", r.EventAt, at)
	}
	if got := r.DetectionMs - r.ObservedDetectionMs; got != 2000 {
		t.Errorf("detection from the event %d ms, from the observation %d ms: want 2000 ms apart", r.DetectionMs, r.ObservedDetectionMs)
	}
	if got := r.RedeployMs - r.ObservedRedeployMs; got != 2000 {
		t.Errorf("redeploy from the event %d ms, from the observation %d ms: want 2000 ms apart", r.RedeployMs, r.ObservedRedeployMs)
	}
	st := h.l.Status()
	if len(st.Events) != 1 || st.Events[0].DelayMs != 2000 || st.Events[0].Target != "a" {
		t.Errorf("events = %+v, want the one event with its 2000 ms discovery delay", st.Events)
	}
	if len(st.Deploys) != 1 || st.Deploys[0].Seq != r.Seq {
		t.Errorf("deploys = %+v", st.Deploys)
	}
}

// TestMovedIgnoresStaleCopies: a machine crashes, its services move (from
// → to); it returns with a stale copy of a service, which the deploy
// removes: that copy did not move.
func TestMovedIgnoresStaleCopies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second) // store, api on a; web, worker on b
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: discovery.ReasonGoodbye, At: h.clock.Now()})
	r := h.waitDeploy(5 * time.Second)
	want := []Move{{Service: "web", From: []string{"b"}, To: []string{"a"}}, {Service: "worker", From: []string{"b"}, To: []string{"a"}}}
	if !movesEqual(r.Moves, want) || !slices.Equal(r.Moved, []string{"web", "worker"}) {
		t.Errorf("moves after the crash = %+v (moved %v), want %+v", r.Moves, r.Moved, want)
	}
	// b comes back still running a stale copy of store (the deployer
	// reports it in the previous distribution); the deploy removes it.
	h.dep.mu.Lock()
	h.dep.current["store"] = []model.Mapping{{Target: "a"}, {Target: "b"}}
	h.dep.mu.Unlock()
	h.snap(infraOf("a", "b"))
	r = h.waitDeploy(time.Minute)
	if len(r.Moves) != 0 || len(r.Moved) != 0 {
		t.Errorf("the removal of a stale copy is reported as a move: moves %+v, moved %v", r.Moves, r.Moved)
	}
}

func movesEqual(a, b []Move) bool {
	return slices.EqualFunc(a, b, func(x, y Move) bool {
		return x.Service == y.Service && slices.Equal(x.From, y.From) && slices.Equal(x.To, y.To)
	})
}

// TestFailureClearedWhenMatching: a failed deploy shows a red banner with
// its retry time; once the system matches its models again (the failing
// target is gone), the banner goes.
func TestFailureClearedWhenMatching(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.dep.fail = func(n int) error {
		if n == 2 {
			return errors.New("activate web on b: exit status 1")
		}
		return nil
	}
	srv := h.l.Handler()
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	h.snap(infraOf("a", "b"))
	if r := h.waitDeploy(5 * time.Second); r.Result != "failure" {
		t.Fatalf("deploy = %+v, want a failure", r)
	}
	_, _, live := get(t, srv, "/live")
	if !strings.Contains(live, `<div class="banner" data-kind="retry">`) || !strings.Contains(live, "activate web on b") || !strings.Contains(live, "retrying at") {
		t.Errorf("no retry banner after the failure:\n%s", live)
	}
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: discovery.ReasonGoodbye, At: h.clock.Now()})
	h.settle()
	h.advance(time.Second)
	h.settle()
	st := h.l.Status()
	if len(st.Alerts) != 0 || st.DeployError != "" {
		t.Errorf("status after the system matches again: alerts %+v, deploy error %q", st.Alerts, st.DeployError)
	}
	if _, _, live := get(t, srv, "/live"); strings.Contains(live, `class="banner"`) {
		t.Errorf("the failure stays on the page after the system matches again:\n%s", live)
	}
}

// TestModelsErrorBanner: a rejected model shows a red banner, not a
// healthy-looking "idle"; the fix clears it.
func TestModelsErrorBanner(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	srv := h.l.Handler()
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	h.planner.mu.Lock()
	h.planner.loadErr = errors.New("services.nix:3:4: expected a list")
	h.planner.mu.Unlock()
	h.advance(time.Hour) // the resync reloads the models
	h.settle()
	_, _, live := get(t, srv, "/live")
	if !strings.Contains(live, `data-kind="models"`) || !strings.Contains(live, "services.nix:3:4: expected a list") {
		t.Errorf("no banner for the rejected models:\n%s", live)
	}
	h.planner.mu.Lock()
	h.planner.loadErr = nil
	h.planner.mu.Unlock()
	h.advance(time.Hour)
	h.settle()
	if _, _, live := get(t, srv, "/live"); strings.Contains(live, `class="banner"`) {
		t.Errorf("the banner stays after the fix:\n%s", live)
	}
}

// TestSourceAndSnapshotAlerts covers the banners computed from the status.
func TestSourceAndSnapshotAlerts(t *testing.T) {
	t.Parallel()
	l, err := New(Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{}, &recordingDeployer{}},
		Snapshotter: &recordingDeployer{}, SnapshotSchedule: "@every 1m"})
	if err != nil {
		t.Fatal(err)
	}
	retry := t0.Add(30 * time.Second)
	tests := []struct {
		name  string
		st    Status
		now   time.Time
		kinds []string
	}{
		{"healthy", Status{Started: t0, LastSnapshot: t0.Add(time.Minute)}, t0.Add(2 * time.Minute), nil},
		{"source", Status{Started: t0, SourceError: "avahi: dbus gone"}, t0, []string{"source"}},
		{"retry", Status{Started: t0, RetryAt: &retry, DeployError: "boom"}, t0, []string{"retry"}},
		{"failed", Status{Started: t0, DeployError: "boom"}, t0, []string{"deploy"}},
		{"snapshot stale", Status{Started: t0, LastSnapshot: t0.Add(time.Minute)}, t0.Add(3*time.Minute + time.Second), []string{"snapshot"}},
		{"no snapshot yet", Status{Started: t0}, t0.Add(3 * time.Minute), []string{"snapshot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kinds []string
			for _, a := range l.alerts(&tt.st, tt.now) {
				kinds = append(kinds, a.Kind)
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("alerts = %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

// TestCrashedTargetDrawnDown: while the deploy moving its services away
// runs, a crashed machine is drawn as down with its services (not as a
// normal box, and not gone).
func TestCrashedTargetDrawnDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	h.dep.block = make(chan struct{})
	h.dep.started = make(chan struct{}, 1)
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: discovery.ReasonGoodbye, At: h.clock.Now()})
	h.settle()
	h.advance(time.Second)
	waitChan(t, h.dep.started, "the deploy to start")
	d := h.l.Diagram()
	var found bool
	for _, b := range d.Boxes {
		if b.Target == "b" {
			found = true
			if b.State != "down" || len(b.Services) == 0 {
				t.Errorf("box of the crashed target = %+v, want down with its services", b)
			}
		}
	}
	if !found {
		t.Errorf("the crashed target holding services is not drawn: %+v", d.Boxes)
	}
	close(h.dep.block)
	h.waitDeploy(5 * time.Second)
	for _, b := range h.l.Diagram().Boxes {
		if b.Target == "b" {
			t.Errorf("the crashed target is still drawn once empty: %+v", b)
		}
	}
}

// profilingPass is a fake pass whose agents report their services.
type profilingPass struct {
	fakePass
	profiles map[string]*agentapi.Profile
}

func (p profilingPass) Profiles(ctx context.Context, infra model.Infrastructure) map[string]*agentapi.Profile {
	out := map[string]*agentapi.Profile{}
	for name := range infra {
		if pr := p.profiles[name]; pr != nil {
			out[name] = pr
		}
	}
	return out
}

// TestServiceHealthOnThePage: the agents' health and restart counts are
// in the status and on the page; an unhealthy service is marked.
func TestServiceHealthOnThePage(t *testing.T) {
	t.Parallel()
	p := profilingPass{profiles: map[string]*agentapi.Profile{
		"a": {Services: []agentapi.ProfileEntry{
			{Service: model.ManifestService{Name: "web"}, Container: "process", Running: true, Healthy: false, Restarts: 3},
			{Service: model.ManifestService{Name: "store"}, Container: "process", Running: true, Healthy: true},
		}},
	}}
	h := newHarness(t, func(c *Config) {
		p.fakePass = c.Pass.(fakePass)
		c.Pass = p
	})
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	h.l.refreshHealth(context.Background(), p, infraOf("a"))
	st := h.l.Status()
	want := []ServiceHealth{{Service: "store", Target: "a", Container: "process", Running: true, Healthy: true},
		{Service: "web", Target: "a", Container: "process", Running: true, Restarts: 3}}
	if !slices.Equal(st.Services, want) {
		t.Errorf("services = %+v, want %+v", st.Services, want)
	}
	if m := h.l.Diagram().Marks; m[visual.Node{Service: "web", Target: "a"}] != "unhealthy" {
		t.Errorf("marks = %v, want web@a unhealthy", m)
	}
	_, _, live := get(t, h.l.Handler(), "/live")
	if !strings.Contains(live, `<td class="bad">3</td>`) {
		t.Errorf("the page lacks web's 3 restarts:\n%s", live)
	}
}
