package adapt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

// The discovery types the loop consumes, under short names in the tests.
type (
	Snapshot = discovery.Snapshot
	Event    = discovery.Event
)

// EventRemoved is discovery's removal kind.
const EventRemoved = discovery.EventRemoved

// ChanSource is a discovery.Source fed from a channel.
type ChanSource chan Snapshot

// Run forwards snapshots until ctx ends or the channel is closed.
func (c ChanSource) Run(ctx context.Context, out chan<- Snapshot) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s, ok := <-c:
			if !ok {
				<-ctx.Done()
				return ctx.Err()
			}
			select {
			case out <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// fakePlanner places services round robin over the sorted targets, keeping
// a service on its previous target while that target is still there (a
// tiny preferPrevious). Its models are the content of file when set.
type fakePlanner struct {
	mu        sync.Mutex
	file      string
	services  []string
	previous  []model.Distribution
	augmented []model.Infrastructure
	loadErr   error
}

func (p *fakePlanner) Load(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loadErr != nil {
		return "", p.loadErr
	}
	if p.file == "" {
		return "fixed", nil
	}
	b, err := os.ReadFile(p.file)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

func (p *fakePlanner) Augment(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	out := infra.Clone()
	for _, t := range out {
		t.Properties["secret"] = "s3cret"
	}
	p.mu.Lock()
	p.augmented = append(p.augmented, out)
	p.mu.Unlock()
	return out, nil
}

func (p *fakePlanner) Plan(ctx context.Context, infra model.Infrastructure, prev model.Distribution) (*rollout.Desired, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.previous = append(p.previous, prev)
	names := infra.Names()
	if len(names) == 0 {
		return nil, errors.New("no targets")
	}
	svcs := model.Services{}
	dist := model.Distribution{}
	for i, s := range p.services {
		svcs[s] = &model.Service{Name: s, Type: "process"}
		if i > 0 {
			svcs[s].DependsOn = []string{p.services[0]}
		}
		t := names[i%len(names)]
		if old := prev.Targets(s); len(old) == 1 {
			if _, ok := infra[old[0]]; ok {
				t = old[0]
			}
		}
		dist[s] = []model.Mapping{{Target: t}}
	}
	return &rollout.Desired{Services: svcs, Infrastructure: infra, Distribution: dist}, nil
}

// recordingDeployer records every request instead of deploying (as Nomad's
// scheduler harness records plans); fail decides the outcome of each call.
type recordingDeployer struct {
	mu       sync.Mutex
	requests []*rollout.Desired
	current  model.Distribution
	fail     func(n int) error
	block    chan struct{} // when set, Deploy waits for it or ctx
	started  chan struct{}
	ctxErr   error
	recons   int
	snaps    int
	reqs     []rollout.Request // every Apply's request
}

func (r *recordingDeployer) Current(ctx context.Context) (model.Distribution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current.Clone(), nil
}

func (r *recordingDeployer) Reconstruct(ctx context.Context, infra model.Infrastructure) error {
	r.mu.Lock()
	r.recons++
	r.mu.Unlock()
	return nil
}

func (r *recordingDeployer) Snapshot(ctx context.Context) error {
	r.mu.Lock()
	r.snaps++
	r.mu.Unlock()
	return nil
}

func (r *recordingDeployer) Deploy(ctx context.Context, desired *rollout.Desired) (*rollout.Result, error) {
	if r.started != nil {
		r.started <- struct{}{}
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			r.mu.Lock()
			r.ctxErr = ctx.Err()
			r.mu.Unlock()
			return nil, fmt.Errorf("rolled back: %w", ctx.Err())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, desired)
	if r.fail != nil {
		if err := r.fail(len(r.requests)); err != nil {
			return nil, err
		}
	}
	var moved []string
	for _, s := range desired.Distribution.Names() {
		if fmt.Sprint(r.current.Targets(s)) != fmt.Sprint(desired.Distribution.Targets(s)) {
			moved = append(moved, s)
		}
	}
	r.current = desired.Distribution.Clone()
	return &rollout.Result{Desired: desired, Plan: []string{"lock", "activate", "unlock"}, Moved: moved}, nil
}

// fakePass composes the fake planner and the recording deployer as a
// rollout.Pass does: previous distribution, plan, deploy.
type fakePass struct {
	*fakePlanner
	*recordingDeployer
}

func (p fakePass) Apply(ctx context.Context, infra model.Infrastructure, req rollout.Request) (*rollout.Result, error) {
	p.recordingDeployer.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.recordingDeployer.mu.Unlock()
	prev, err := p.Current(ctx)
	if err != nil {
		return nil, err
	}
	d, err := p.Plan(ctx, infra, prev)
	if err != nil {
		return nil, err
	}
	// Step 1 of 3 runs while the deployer deploys (or blocks).
	step := deployer.Step{ID: 1, Kind: deployer.StepActivate, Service: "web", Target: infra.Names()[0]}
	if req.Progress != nil {
		req.Progress(deployer.StepEvent{Step: step, Phase: deployer.PhaseStart}, 3)
	}
	res, err := p.Deploy(ctx, d)
	if req.Progress != nil {
		req.Progress(deployer.StepEvent{Step: step, Phase: deployer.PhaseDone, Duration: time.Millisecond}, 3)
	}
	return res, err
}

// harness runs a Loop on a stepClock and follows, through Config.OnStep,
// what the loop has handled: it moves time on only once the loop has
// consumed every snapshot sent to it and every timer firing it received,
// and runs nothing (no deploy, drain check or snapshot job).
type harness struct {
	t       *testing.T
	l       *Loop
	clock   *stepClock
	src     ChanSource
	dep     *recordingDeployer
	planner *fakePlanner
	reports chan DeployReport
	changes chan MemberChange
	cancel  context.CancelFunc
	errc    chan error

	mu      sync.Mutex
	stepped chan struct{}     // signalled (capacity 1) after every step
	ready   bool              // OnReady was called
	counts  map[StepEvent]int // steps handled, by event
	busy    bool              // Busy of the last step
	sent    int               // snapshots handed to the source
	fired   int               // timer firings the loop received
}

// failAfter bounds every wait of the harness on the loop: only a stuck
// loop (a bug) reaches it, not a slow machine.
const failAfter = time.Minute

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		clock:   newStepClock(t0),
		src:     make(ChanSource),
		dep:     &recordingDeployer{},
		planner: &fakePlanner{services: []string{"store", "web", "api", "worker"}},
		reports: make(chan DeployReport, 100),
		changes: make(chan MemberChange, 100),
		errc:    make(chan error, 1),
		stepped: make(chan struct{}, 1),
		counts:  map[StepEvent]int{},
	}
	tm := testTiming()
	tm.Resync = time.Hour
	cfg := Config{
		Source: h.src, Pass: fakePass{h.planner, h.dep}, Clock: h.clock, Timing: tm,
		OnDeploy: func(r DeployReport) { h.reports <- r },
		OnChange: func(c MemberChange) { h.changes <- c },
		OnReady:  func() { h.update(func() { h.ready = true }) },
		OnStep: func(s Step) {
			h.update(func() {
				h.counts[s.Event]++
				h.busy = s.Busy
			})
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.errc:
		case <-time.After(failAfter):
			t.Error("loop did not stop")
		}
	})
	h.waitUntil("the loop to start", func() bool { return h.ready })
	return h
}

// update changes the harness's record under its lock and wakes waitUntil.
func (h *harness) update(f func()) {
	h.mu.Lock()
	f()
	h.mu.Unlock()
	select {
	case h.stepped <- struct{}{}:
	default:
	}
}

// waitUntil waits until cond (called under the harness's lock) holds.
func (h *harness) waitUntil(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(failAfter)
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.stepped:
		case <-deadline:
			h.t.Fatalf("waiting for %s: the loop is stuck", what)
		}
	}
}

// waitChan waits for a signal of a fake.
func waitChan(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(failAfter):
		t.Fatalf("waiting for %s: the loop is stuck", what)
	}
}

func (h *harness) snap(infra model.Infrastructure, evs ...Event) {
	h.t.Helper()
	select {
	case h.src <- Snapshot{Infrastructure: infra, Events: evs, At: h.clock.Now()}:
		h.update(func() { h.sent++ })
	case <-time.After(failAfter):
		h.t.Fatal("loop does not take snapshots")
	}
}

// advance moves the fake time on by d; it returns once the loop has
// received every timer that fired (not yet handled it: see handled).
func (h *harness) advance(d time.Duration) {
	n := h.clock.Advance(d)
	h.update(func() { h.fired += n })
}

// handled waits until the loop has handled every snapshot sent and every
// timer firing it received.
func (h *harness) handled() {
	h.t.Helper()
	h.waitUntil("the loop to handle its input", func() bool {
		return h.counts[StepDiscovery] >= h.sent && h.counts[StepTimer] >= h.fired
	})
}

// settle waits until the loop is idle: its input handled, nothing running
// and no timer due at the current time.
func (h *harness) settle() {
	h.t.Helper()
	for {
		h.waitUntil("the loop to become idle", func() bool {
			return h.counts[StepDiscovery] >= h.sent && h.counts[StepTimer] >= h.fired && !h.busy
		})
		n := h.clock.Advance(0) // timers armed already due
		if n == 0 {
			return
		}
		h.update(func() { h.fired += n })
	}
}

// waitEvent waits until the loop has handled n steps of event ev.
func (h *harness) waitEvent(ev StepEvent, n int) {
	h.t.Helper()
	h.waitUntil(string(ev), func() bool { return h.counts[ev] >= n })
}

func (h *harness) count(ev StepEvent) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[ev]
}

// tick is the simulated time waitDeploy and noDeploy move on at a time.
const tick = 50 * time.Millisecond

// waitDeploy lets the loop settle, then advances the fake clock one tick,
// until a deploy is reported.
func (h *harness) waitDeploy(max time.Duration) DeployReport {
	h.t.Helper()
	for adv := time.Duration(0); ; adv += tick {
		h.settle()
		select {
		case r := <-h.reports:
			return r
		default:
		}
		if adv >= max {
			h.t.Fatalf("no deploy within %v of simulated time", max)
		}
		h.advance(tick)
	}
}

// noDeploy fails when the loop reports a deploy within d of simulated time.
func (h *harness) noDeploy(d time.Duration) {
	h.t.Helper()
	for adv := time.Duration(0); ; adv += tick {
		h.settle()
		select {
		case r := <-h.reports:
			h.t.Fatalf("unexpected deploy: %+v", r)
		default:
		}
		if adv >= d {
			return
		}
		h.advance(tick)
	}
}

// startBlockedDeploy makes the deployer block and starts a deploy.
func (h *harness) startBlockedDeploy() {
	h.t.Helper()
	h.dep.block = make(chan struct{})
	h.dep.started = make(chan struct{}, 1)
	h.snap(infraOf("a"))
	h.settle()             // the debounce is armed
	h.advance(time.Second) // and passed: the deploy starts
	waitChan(h.t, h.dep.started, "the deploy to start")
}

func TestLoopDeploysAndFollowsTheNetwork(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a", "b"))
	r1 := h.waitDeploy(5 * time.Second)
	if r1.Result != "success" || fmt.Sprint(r1.Targets) != "[a b]" {
		t.Fatalf("first deploy = %+v", r1)
	}
	// The harness moves time on only while the loop is idle: the deploy
	// starts when the debounce ends and takes no simulated time.
	if r1.DetectionMs != 150 || r1.RedeployMs != 150 {
		t.Errorf("detection %d ms, redeploy %d ms; want 150 and 150 (the debounce)", r1.DetectionMs, r1.RedeployMs)
	}
	if fmt.Sprint(r1.Reconcile) != "[a b]" {
		t.Errorf("new targets not reconciled: %v", r1.Reconcile)
	}
	// the augmented infrastructure reaches the planner, never the status
	if h.planner.augmented[0]["a"].Properties["secret"] != "s3cret" {
		t.Errorf("planner did not get the augmented infrastructure")
	}
	if st := h.l.Status(); st.Infrastructure["a"].Properties["secret"] != nil {
		t.Errorf("status leaks the augmentation: %v", st.Infrastructure["a"].Properties)
	}

	h.snap(infraOf("a", "b", "c"))
	r2 := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r2.Targets) != "[a b c]" || fmt.Sprint(r2.Reconcile) != "[c]" {
		t.Fatalf("second deploy = %+v", r2)
	}
	// previous distribution passed to the policy: nothing moves when a
	// target is added (preferPrevious-like fake).
	if prev := h.planner.previous[1]; prev == nil || len(r2.Moved) != 0 {
		t.Errorf("previous = %v, moved = %v", prev, r2.Moved)
	}

	h.snap(infraOf("a", "c"), Event{Kind: EventRemoved, Target: "b", Reason: "goodbye"})
	r3 := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r3.Targets) != "[a c]" {
		t.Fatalf("after goodbye deploy = %+v", r3)
	}
	for _, s := range r3.Distribution.Names() {
		if r3.Distribution.Targets(s)[0] == "b" {
			t.Errorf("%s still on the departed target", s)
		}
	}
	if len(r3.Moved) == 0 {
		t.Errorf("nothing moved off the departed target")
	}
	st := h.l.Status()
	if st.LastEvent == nil || st.LastEvent.Target != "b" || st.LastDeploy.Seq != r3.Seq {
		t.Errorf("status = %+v", st)
	}
}

func TestLoopRetriesThenSupersedes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var mu sync.Mutex
	failing := true
	h.dep.fail = func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("activation of web on a failed")
		}
		return nil
	}
	h.snap(infraOf("a"))
	r := h.waitDeploy(5 * time.Second)
	if r.Result != "failure" || r.Attempt != 0 {
		t.Fatalf("deploy = %+v", r)
	}
	r = h.waitDeploy(5 * time.Second)
	if r.Result != "failure" || r.Attempt != 1 {
		t.Fatalf("retry = %+v", r)
	}
	if h.l.Status().RetryAt == nil {
		t.Fatalf("no retry pending in the status")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	h.snap(infraOf("a", "b"))
	r = h.waitDeploy(5 * time.Second)
	if r.Result != "success" || r.Attempt != 0 || fmt.Sprint(r.Targets) != "[a b]" {
		t.Fatalf("superseding deploy = %+v", r)
	}
}

func TestLoopResyncIsACheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Timing.Resync = time.Second })
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	h.noDeploy(5 * time.Second)
	if st := h.l.Status(); st.LastCheck.IsZero() {
		t.Errorf("resync made no check")
	}
}

func TestLoopReloadsModelsOnFileChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "services.json")
	if err := os.WriteFile(file, []byte(`{"v":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) {
		c.WatchFiles = []string{file}
		c.Pass.(fakePass).fakePlanner.file = file
	})
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	// an editor-style replace: write a temporary file and rename it
	tmp := filepath.Join(dir, ".services.json.tmp")
	if err := os.WriteFile(tmp, []byte(`{"v":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	reloads := h.count(StepReload)
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	h.waitEvent(StepReload, reloads+1) // fsnotify's event, on the wall clock
	r := h.waitDeploy(5 * time.Second)
	if len(r.Causes) == 0 || r.Causes[0] != "models changed" {
		t.Fatalf("causes = %v", r.Causes)
	}
}

func TestLoopBadModelsAtStart(t *testing.T) {
	t.Parallel()
	l, err := New(Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{loadErr: errors.New("services.json:3:4: expected a list")}, &recordingDeployer{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err == nil {
		t.Fatal("Run started with unloadable models")
	}
}

func TestLoopShutdownFinishesRunningDeploy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.startBlockedDeploy()
	h.cancel()
	h.waitEvent(StepStop, 1)
	select {
	case <-h.errc:
		t.Fatal("Run returned while a deploy was running")
	default:
	}
	close(h.dep.block)
	// Only a loop that waits for the deploy reports it.
	var r DeployReport
	select {
	case r = <-h.reports:
	case <-time.After(failAfter):
		t.Fatal("the running deploy was not finished")
	}
	if r.Result != "success" {
		t.Fatalf("deploy = %+v", r)
	}
	if err := <-h.errc; err != nil {
		t.Fatal(err)
	}
	h.errc <- nil // for the cleanup
}

func TestLoopShutdownTimeoutRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.ShutdownTimeout = time.Minute })
	h.startBlockedDeploy()
	h.cancel()
	h.waitEvent(StepStop, 1)
	h.advance(time.Minute - time.Millisecond)
	select {
	case <-h.errc:
		t.Fatal("Run returned before the shutdown timeout")
	default:
	}
	h.advance(time.Millisecond) // the timeout: the deploy is cancelled
	select {
	case err := <-h.errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("Run did not return after the shutdown timeout")
	}
	h.dep.mu.Lock()
	ctxErr := h.dep.ctxErr
	h.dep.mu.Unlock()
	if ctxErr == nil {
		t.Fatal("running deploy was not cancelled")
	}
	if r := <-h.reports; r.Result != "failure" {
		t.Fatalf("cancelled deploy reported %+v", r)
	}
	h.errc <- nil
}

// TestLoopSnapshotsOnSchedule: the snapshot schedule runs on the loop's
// clock (it ran on the wall clock with robfig/cron's runner).
func TestLoopSnapshotsOnSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec          string
		first, period time.Duration
	}{
		{"@every 1m", time.Minute, time.Minute},
		{"*/5 * * * *", 5 * time.Minute, 5 * time.Minute},
		{"@hourly", time.Hour, time.Hour},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) {
				c.SnapshotSchedule = tc.spec
				c.Snapshotter = c.Pass.(fakePass).recordingDeployer
				c.Timing.Resync = 100 * time.Hour // no check (a deploy) at an activation
			})
			snaps := func() int {
				h.dep.mu.Lock()
				defer h.dep.mu.Unlock()
				return h.dep.snaps
			}
			h.snap(infraOf("a"))
			h.waitDeploy(5 * time.Second)
			h.advance(t0.Add(tc.first).Sub(h.clock.Now()) - time.Second)
			h.settle()
			if n := snaps(); n != 0 {
				t.Fatalf("%d snapshots a second before the schedule's first activation", n)
			}
			h.advance(time.Second)
			h.settle()
			if n := snaps(); n != 1 {
				t.Fatalf("%d snapshots at the schedule's first activation, want 1", n)
			}
			if at := h.l.Status().LastSnapshot; !at.Equal(t0.Add(tc.first)) {
				t.Errorf("lastSnapshot = %v, want %v", at, t0.Add(tc.first))
			}
			h.advance(tc.period)
			h.settle()
			if n := snaps(); n != 2 {
				t.Fatalf("%d snapshots after a second period, want 2", n)
			}
		})
	}
}

func TestNewRejectsBadSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, want string }{
		{"every minute", "every minute"},
		{"0 0 30 2 *", "never activates"}, // 30 February
	} {
		_, err := New(Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{}, &recordingDeployer{}},
			Snapshotter: &recordingDeployer{}, SnapshotSchedule: tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with schedule %q = %v, want an error naming %q", tc.spec, err, tc.want)
		}
	}
}

type failingSource struct{}

func (failingSource) Run(ctx context.Context, out chan<- Snapshot) error {
	return errors.New("interface veth9 not found")
}

func TestLoopStopsWhenTheSourceFails(t *testing.T) {
	t.Parallel()
	ready := make(chan struct{})
	l, err := New(Config{Source: failingSource{}, Pass: fakePass{&fakePlanner{}, &recordingDeployer{}},
		OnReady: func() { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "veth9") {
		t.Fatalf("Run = %v, want the source's error", err)
	}
	select {
	case <-ready:
	default:
		t.Error("OnReady not called")
	}
}

// drainingPass is a fake pass whose targets can report a drain; every
// target answers (true: draining, false: not).
type drainingPass struct {
	fakePass
	mu2      sync.Mutex
	draining map[string]bool
}

func (d *drainingPass) Draining(ctx context.Context, infra model.Infrastructure) map[string]bool {
	d.mu2.Lock()
	defer d.mu2.Unlock()
	out := map[string]bool{}
	for t := range infra {
		out[t] = d.draining[t]
	}
	return out
}

func TestLoopDrainWithoutGoodbye(t *testing.T) {
	t.Parallel()
	var dd *drainingPass
	h := newHarness(t, func(c *Config) {
		dd = &drainingPass{fakePass: c.Pass.(fakePass), draining: map[string]bool{}}
		c.Pass = dd
		c.Timing.Resync = time.Second
	})
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	dd.mu2.Lock()
	dd.draining["b"] = true
	dd.mu2.Unlock()
	r := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a]" || !strings.Contains(fmt.Sprint(r.Causes), "target b removed (drain)") {
		t.Fatalf("drain deploy = %+v", r)
	}
	// discovery still reports b (its goodbye was lost): it stays out
	h.snap(infraOf("a", "b"))
	h.noDeploy(3 * time.Second)
	if st := h.l.Status(); len(st.Infrastructure) != 1 {
		t.Errorf("draining target used again: %v", st.Infrastructure.Names())
	}
	// b's agent restarts before discovery dropped its record: it answers
	// that it does not drain, and b is used again (after its probation).
	dd.mu2.Lock()
	dd.draining["b"] = false
	dd.mu2.Unlock()
	r = h.waitDeploy(time.Minute)
	if fmt.Sprint(r.Targets) != "[a b]" {
		t.Fatalf("after the restart deploy = %+v, want b back", r)
	}
}

// sequentialPass is a fake pass that logs its drain checks and profile
// polls. A drain check lasts 200 ms, or until a profile poll begins
// meanwhile.
type sequentialPass struct {
	fakePass
	mu       sync.Mutex
	log      []string
	profiled chan struct{} // a profile poll began during a drain check
}

func (p *sequentialPass) note(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, what)
}

func (p *sequentialPass) logged() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

func (p *sequentialPass) Draining(ctx context.Context, infra model.Infrastructure) map[string]bool {
	p.note("drain check")
	select {
	case <-p.profiled:
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
	}
	p.note("drain answered")
	return map[string]bool{}
}

func (p *sequentialPass) Profiles(ctx context.Context, infra model.Infrastructure) map[string]*agentapi.Profile {
	p.note("profiles")
	select {
	case p.profiled <- struct{}{}:
	default:
	}
	return nil
}

// TestResyncAsksOneThingAtATime: a resync asks the agents for their
// profiles once the drain check has answered, not side by side (every
// agent kept a second idle connection for that). The fake's drain check
// ends at once when a profile poll begins meanwhile: a poll side by side
// is logged before the check's answer, however the goroutines run.
func TestResyncAsksOneThingAtATime(t *testing.T) {
	t.Parallel()
	p := &sequentialPass{profiled: make(chan struct{})}
	h := newHarness(t, func(c *Config) {
		p.fakePass = c.Pass.(fakePass)
		c.Pass = p
		c.Timing.Resync = time.Second
	})
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	// The poll after the deploy, done.
	testenv.Eventually(t, failAfter, func() bool { return len(p.logged()) == 1 && !h.l.polling.Load() }, "the poll after the deploy: %v", p.logged())
	h.advance(time.Second)
	want := []string{"profiles", "drain check", "drain answered", "profiles"}
	testenv.Eventually(t, failAfter, func() bool { return len(p.logged()) >= len(want) }, "a resync's drain check and profile poll: %v", p.logged())
	if got := p.logged(); !slices.Equal(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}
}

// oneQuestionPass is a fake pass whose resync learns the drain and the
// profiles from one question per target (DrainProfiler); it logs every
// question. Its targets drain as draining says; each runs one service "s".
type oneQuestionPass struct {
	sequentialPass
	draining map[string]bool // guarded by sequentialPass.mu
}

func (p *oneQuestionPass) DrainingProfiles(ctx context.Context, infra model.Infrastructure) (map[string]bool, map[string]*agentapi.Profile) {
	p.note("drain and profiles")
	p.mu.Lock()
	defer p.mu.Unlock()
	d, profiles := map[string]bool{}, map[string]*agentapi.Profile{}
	for t := range infra {
		d[t] = p.draining[t]
		profiles[t] = &agentapi.Profile{Services: []agentapi.ProfileEntry{{Target: t,
			Service: model.ManifestService{Name: "s"}, Running: true, Healthy: true}}}
	}
	return d, profiles
}

// deployedOneQuestion starts a loop on a oneQuestionPass (resync every
// second) with the targets a and b, and returns once the first deploy and
// the profile poll after it are done.
func deployedOneQuestion(t *testing.T) (*oneQuestionPass, *harness) {
	t.Helper()
	p := &oneQuestionPass{sequentialPass: sequentialPass{profiled: make(chan struct{})}, draining: map[string]bool{}}
	h := newHarness(t, func(c *Config) {
		p.fakePass = c.Pass.(fakePass)
		c.Pass = p
		c.Timing.Resync = time.Second
	})
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	testenv.Eventually(t, failAfter, func() bool { return len(p.logged()) == 1 && !h.l.polling.Load() }, "the poll after the deploy: %v", p.logged())
	return p, h
}

// TestResyncAsksOnceForDrainAndProfiles: with a pass that learns both
// from one question (the agents' profiles say whether they drain), a
// resync asks only that: the status shows the services it reported, and
// a target it reports draining is moved away from.
func TestResyncAsksOnceForDrainAndProfiles(t *testing.T) {
	t.Parallel()
	p, h := deployedOneQuestion(t)
	h.advance(time.Second)
	want := []string{"profiles", "drain and profiles"}
	testenv.Eventually(t, failAfter, func() bool { return len(h.l.Status().Services) == 2 }, "the resync's profiles in the status: %v", p.logged())
	if got := p.logged(); !slices.Equal(got, want) {
		t.Errorf("logged %v, want %v", got, want)
	}
	p.mu.Lock()
	p.draining["b"] = true
	p.mu.Unlock()
	h.advance(time.Second)
	r := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a]" || !strings.Contains(fmt.Sprint(r.Causes), "target b removed (drain)") {
		t.Fatalf("drain deploy = %+v", r)
	}
	for _, q := range p.logged() {
		if q == "drain check" {
			t.Errorf("a resync asked a separate drain check: %v", p.logged())
		}
	}
}

// TestResyncProfilesYieldToANewerPoll: profiles asked beside a resync's
// drain check are not recorded when a poll (after a deploy) started while
// they were asked: the poll's answer is the newer.
func TestResyncProfilesYieldToANewerPoll(t *testing.T) {
	t.Parallel()
	_, h := deployedOneQuestion(t)
	old := map[string]*agentapi.Profile{"a": {Services: []agentapi.ProfileEntry{{Target: "a",
		Service: model.ManifestService{Name: "old"}, Running: true}}}}
	before := h.l.polls.Load() - 1 // asked before the poll after the deploy started
	h.l.recordPolled(old, before)
	if got := h.l.Status().Services; len(got) > 0 && got[0].Service == "old" {
		t.Fatalf("older profiles recorded over a newer poll's: %+v", got)
	}
	h.l.recordPolled(old, h.l.polls.Load())
	if got := h.l.Status().Services; len(got) != 1 || got[0].Service != "old" {
		t.Fatalf("profiles asked after the last poll not recorded: %+v", got)
	}
}

// stuckSnapshotter blocks every snapshot until its context ends, as a
// snapshot request to a machine that vanished silently would.
type stuckSnapshotter struct {
	started   chan struct{}
	cancelled chan struct{}
}

func (s *stuckSnapshotter) Snapshot(ctx context.Context) error {
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	select {
	case s.cancelled <- struct{}{}:
	default:
	}
	return ctx.Err()
}

// TestLoopDeployCancelsStuckSnapshot: a deploy does not wait for a snapshot
// stuck on a vanished machine; the snapshot is cancelled.
func TestLoopDeployCancelsStuckSnapshot(t *testing.T) {
	t.Parallel()
	snap := &stuckSnapshotter{started: make(chan struct{}, 1), cancelled: make(chan struct{}, 1)}
	h := newHarness(t, func(c *Config) {
		c.SnapshotSchedule = "@every 1m"
		c.Snapshotter = snap
	})
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	h.advance(t0.Add(time.Minute).Sub(h.clock.Now())) // the schedule's activation
	waitChan(t, snap.started, "the snapshot to start")
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: "goodbye"})
	h.handled()
	h.advance(time.Second) // past the debounce: the deploy starts
	waitChan(t, snap.cancelled, "the stuck snapshot to be cancelled")
	select {
	case r := <-h.reports:
		if fmt.Sprint(r.Targets) != "[a]" {
			t.Fatalf("deploy = %+v", r)
		}
	case <-time.After(failAfter):
		t.Fatal("no deploy")
	}
	// It is retried after the deploy (and stays stuck until the end).
	waitChan(t, snap.started, "the snapshot to be retried")
	if n := counterValue(t, h.l, MetricSnapshots, "cancelled"); n != 1 {
		t.Errorf("%s{result=\"cancelled\"} = %v, want 1", MetricSnapshots, n)
	}
}

// counterValue returns the value of the counter name{result=result}.
func counterValue(t *testing.T, l *Loop, name, result string) float64 {
	t.Helper()
	mfs, err := l.cfg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// gatedSnapshotter blocks every snapshot until it is released (one token
// of release per run) or its context ends; a run whose context ended,
// even if released too, reports the cancellation.
type gatedSnapshotter struct {
	started   chan struct{}
	release   chan struct{}
	mu        sync.Mutex
	cancelled int
	completed int
}

func newGatedSnapshotter() *gatedSnapshotter {
	return &gatedSnapshotter{started: make(chan struct{}, 4), release: make(chan struct{}, 4)}
}

func (s *gatedSnapshotter) Snapshot(ctx context.Context) error {
	s.started <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		s.cancelled++
		return err
	}
	s.completed++
	return nil
}

func (s *gatedSnapshotter) counts() (cancelled, completed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled, s.completed
}

// advanceUntil moves the fake time on a tick at a time (at most max)
// until the loop has handled n steps of event ev; unlike waitDeploy it
// does not wait for the loop to be idle (a snapshot job may be running),
// only for its input to be handled and no deploy or check to run.
func (h *harness) advanceUntil(ev StepEvent, n int, max time.Duration) {
	h.t.Helper()
	for adv := time.Duration(0); h.count(ev) < n; adv += tick {
		if adv >= max {
			h.mu.Lock()
			h.t.Fatalf("%d %s steps within %v of simulated time, want %d", h.count(ev), ev, max, n)
		}
		h.handled()
		h.waitUntil("the deploy or check to end", func() bool { return h.l.Status().Phase != "deploying" })
		h.advance(tick)
	}
}

// TestLoopResyncKeepsSnapshot: a resync's check that finds nothing
// changed leaves a running snapshot alone (it used to cancel it, so at
// scale no snapshot ever completed).
func TestLoopResyncKeepsSnapshot(t *testing.T) {
	t.Parallel()
	snap := newGatedSnapshotter()
	h := newHarness(t, func(c *Config) {
		c.SnapshotSchedule = "@every 1m"
		c.Snapshotter = snap
		c.Timing.Resync = 5 * time.Second
	})
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	h.advance(t0.Add(time.Minute).Sub(h.clock.Now())) // the schedule's activation
	waitChan(t, snap.started, "the snapshot to start")
	checks := h.count(StepDeployDone)
	h.advanceUntil(StepDeployDone, checks+2, 30*time.Second) // two resyncs' checks
	snapsDone := h.count(StepSnapshotDone)
	snap.release <- struct{}{}
	h.waitEvent(StepSnapshotDone, snapsDone+1)
	if cancelled, completed := snap.counts(); cancelled != 0 || completed != 1 {
		t.Errorf("snapshots: %d cancelled, %d completed; want the one to complete beside the checks", cancelled, completed)
	}
	if n := counterValue(t, h.l, MetricSnapshots, "success"); n != 1 {
		t.Errorf("%s{result=\"success\"} = %v, want 1", MetricSnapshots, n)
	}
}

// TestLoopPreemptedSnapshotRetried: a real deploy cancels a running
// snapshot, which runs again right after the deploy.
func TestLoopPreemptedSnapshotRetried(t *testing.T) {
	t.Parallel()
	snap := newGatedSnapshotter()
	h := newHarness(t, func(c *Config) {
		c.SnapshotSchedule = "@every 1m"
		c.Snapshotter = snap
	})
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	h.advance(t0.Add(time.Minute).Sub(h.clock.Now()))
	waitChan(t, snap.started, "the snapshot to start")
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: "goodbye"})
	h.handled()
	h.advance(time.Second) // past the debounce: the deploy starts
	select {
	case r := <-h.reports:
		if fmt.Sprint(r.Targets) != "[a]" || r.Result != "success" {
			t.Fatalf("deploy = %+v", r)
		}
	case <-time.After(failAfter):
		t.Fatal("no deploy")
	}
	waitChan(t, snap.started, "the snapshot to be retried after the deploy")
	snapsDone := h.count(StepSnapshotDone)
	snap.release <- struct{}{}
	h.waitEvent(StepSnapshotDone, snapsDone+1)
	if cancelled, completed := snap.counts(); cancelled != 1 || completed != 1 {
		t.Errorf("snapshots: %d cancelled, %d completed; want 1 preempted and its retry completed", cancelled, completed)
	}
	if n := counterValue(t, h.l, MetricSnapshots, "success"); n != 1 {
		t.Errorf("%s{result=\"success\"} = %v, want 1", MetricSnapshots, n)
	}
}

// timedSnapshotter snapshots one stateful service, "store", at the loop's
// clock; only its first run succeeds.
type timedSnapshotter struct {
	clock *stepClock
	mu    sync.Mutex
	runs  int
	taken time.Time
}

func (s *timedSnapshotter) Snapshot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs++
	if s.runs > 1 {
		return errors.New("target t9 does not answer")
	}
	s.taken = s.clock.Now()
	return nil
}

func (s *timedSnapshotter) SnapshotTimes() (map[string]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]time.Time{"store": s.taken}, nil
}

// TestLoopSnapshotAge: the age of each stateful service's newest complete
// snapshot is on /status, on the page and a metric, with a warning once
// it is older than twice the schedule's period.
func TestLoopSnapshotAge(t *testing.T) {
	t.Parallel()
	var snap *timedSnapshotter
	h := newHarness(t, func(c *Config) {
		snap = &timedSnapshotter{clock: c.Clock.(*stepClock)}
		c.SnapshotSchedule = "@every 1m"
		c.Snapshotter = snap
		c.Timing.Resync = 100 * time.Hour
	})
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	ageMetric := func() float64 {
		t.Helper()
		mfs, err := h.l.cfg.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == MetricSnapshotAge {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == "store" {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		t.Fatalf("no %s{service=\"store\"}", MetricSnapshotAge)
		return 0
	}
	page := func() string {
		t.Helper()
		rec := httptest.NewRecorder()
		h.l.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/live", nil))
		return rec.Body.String()
	}
	if st := h.l.Status(); len(st.Snapshots) != 1 || st.Snapshots[0].Taken != nil {
		t.Errorf("before any snapshot: %+v, want store without one", st.Snapshots)
	}
	if v := ageMetric(); !math.IsInf(v, 1) {
		t.Errorf("age before any snapshot = %v, want +Inf", v)
	}
	h.advance(t0.Add(time.Minute).Sub(h.clock.Now()))
	h.settle()
	h.advance(30 * time.Second)
	h.settle()
	st := h.l.Status()
	if len(st.Snapshots) != 1 || st.Snapshots[0].Taken == nil || !st.Snapshots[0].Taken.Equal(t0.Add(time.Minute)) ||
		st.Snapshots[0].AgeSeconds != 30 || st.Snapshots[0].Stale {
		t.Fatalf("after the first snapshot: %+v", st.Snapshots)
	}
	if v := ageMetric(); v != 30 {
		t.Errorf("age metric = %v, want 30", v)
	}
	if strings.Contains(page(), "(stale)") {
		t.Error("a fresh snapshot shown stale")
	}
	// The next runs fail: at 2 min 1 s past the snapshot it is stale.
	for h.clock.Now().Before(t0.Add(3*time.Minute + time.Second)) {
		h.advance(30 * time.Second)
		h.settle()
	}
	st = h.l.Status()
	if !st.Snapshots[0].Stale {
		t.Errorf("snapshot %v old not stale", st.Snapshots[0].AgeSeconds)
	}
	var alerted bool
	for _, a := range st.Alerts {
		alerted = alerted || (a.Kind == "snapshot" && strings.Contains(a.Message, "store"))
	}
	if !alerted {
		t.Errorf("alerts %+v: none names the stale snapshot of store", st.Alerts)
	}
	if p := page(); !strings.Contains(p, `id="snapshots"`) || !strings.Contains(p, "(stale)") {
		t.Error("the page does not show the stale snapshot")
	}
}

// TestLoopPassesLostTargets: a target that vanished without a goodbye is
// handed to the pass as lost (not probed again); one that said goodbye is
// not (it may still answer, e.g. to hand over its state).
func TestLoopPassesLostTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		want   string
	}{
		{"probe failed", "[b]"},
		{"goodbye", "[]"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.snap(infraOf("a", "b"))
			h.waitDeploy(5 * time.Second)
			h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: tc.reason})
			h.waitDeploy(5 * time.Second)
			h.dep.mu.Lock()
			req := h.dep.reqs[len(h.dep.reqs)-1]
			h.dep.mu.Unlock()
			if got := fmt.Sprint(req.Lost); got != tc.want {
				t.Errorf("the pass's Lost = %s, want %s", got, tc.want)
			}
		})
	}
}
