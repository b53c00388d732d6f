package adapt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
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
	prev, err := p.Current(ctx)
	if err != nil {
		return nil, err
	}
	d, err := p.Plan(ctx, infra, prev)
	if err != nil {
		return nil, err
	}
	return p.Deploy(ctx, d)
}

type harness struct {
	t       *testing.T
	l       *Loop
	clock   *FakeClock
	src     ChanSource
	dep     *recordingDeployer
	planner *fakePlanner
	reports chan DeployReport
	changes chan MemberChange
	cancel  context.CancelFunc
	errc    chan error
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		clock:   NewFakeClock(t0),
		src:     make(ChanSource),
		dep:     &recordingDeployer{},
		planner: &fakePlanner{services: []string{"store", "web", "api", "worker"}},
		reports: make(chan DeployReport, 100),
		changes: make(chan MemberChange, 100),
		errc:    make(chan error, 1),
	}
	tm := testTiming()
	tm.Resync = time.Hour
	cfg := Config{
		Source: h.src, Pass: fakePass{h.planner, h.dep}, Clock: h.clock, Timing: tm,
		OnDeploy: func(r DeployReport) { h.reports <- r },
		OnChange: func(c MemberChange) { h.changes <- c },
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.stepped = make(chan struct{}, 1000)
	h.l = l
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.errc:
		case <-time.After(10 * time.Second):
			t.Error("loop did not stop")
		}
	})
	return h
}

func (h *harness) snap(infra model.Infrastructure, evs ...Event) {
	h.t.Helper()
	select {
	case h.src <- Snapshot{Infrastructure: infra, Events: evs, At: h.clock.Now()}:
	case <-time.After(10 * time.Second):
		h.t.Fatal("loop does not take snapshots")
	}
}

// waitDeploy advances the fake clock in 50 ms steps until a deploy is
// reported, yielding to the loop after each step until it has handled it.
func (h *harness) waitDeploy(max time.Duration) DeployReport {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for adv := time.Duration(0); adv <= max; adv += 50 * time.Millisecond {
		select {
		case r := <-h.reports:
			return r
		case <-h.l.stepped:
			continue
		case <-time.After(5 * time.Millisecond): // the loop is idle: move time on
		case <-deadline:
			h.t.Fatal("no deploy reported")
		}
		h.clock.Advance(50 * time.Millisecond)
	}
	h.t.Fatalf("no deploy within %v of simulated time", max)
	return DeployReport{}
}

func (h *harness) noDeploy(d time.Duration) {
	h.t.Helper()
	for adv := time.Duration(0); adv <= d; adv += 50 * time.Millisecond {
		select {
		case r := <-h.reports:
			h.t.Fatalf("unexpected deploy: %+v", r)
		case <-h.l.stepped:
			continue
		case <-time.After(5 * time.Millisecond):
		}
		h.clock.Advance(50 * time.Millisecond)
	}
}

func TestLoopDeploysAndFollowsTheNetwork(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a", "b"))
	r1 := h.waitDeploy(5 * time.Second)
	if r1.Result != "success" || fmt.Sprint(r1.Targets) != "[a b]" {
		t.Fatalf("first deploy = %+v", r1)
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
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
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
	h.dep.block = make(chan struct{})
	h.dep.started = make(chan struct{}, 1)
	h.snap(infraOf("a"))
	for started := false; !started; {
		select {
		case <-h.dep.started:
			started = true
		case <-h.l.stepped:
		case <-time.After(5 * time.Millisecond):
			h.clock.Advance(50 * time.Millisecond)
		}
	}
	h.cancel()
	select {
	case <-h.errc:
		t.Fatal("Run returned while a deploy was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(h.dep.block)
	r := <-h.reports
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
	h := newHarness(t, func(c *Config) { c.ShutdownTimeout = time.Second })
	h.dep.block = make(chan struct{})
	h.dep.started = make(chan struct{}, 1)
	h.snap(infraOf("a"))
	for started := false; !started; {
		select {
		case <-h.dep.started:
			started = true
		case <-h.l.stepped:
		case <-time.After(5 * time.Millisecond):
			h.clock.Advance(50 * time.Millisecond)
		}
	}
	h.cancel()
	for {
		select {
		case err := <-h.errc:
			if err != nil {
				t.Fatal(err)
			}
			if h.dep.ctxErr == nil {
				t.Fatal("running deploy was not cancelled")
			}
			if r := <-h.reports; r.Result != "failure" {
				t.Fatalf("cancelled deploy reported %+v", r)
			}
			h.errc <- nil
			return
		case <-time.After(5 * time.Millisecond):
			h.clock.Advance(100 * time.Millisecond)
		}
	}
}

func TestLoopSnapshotsOnSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.SnapshotSchedule = "@every 1s"
		c.Snapshotter = c.Pass.(fakePass).recordingDeployer
	})
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	// robfig/cron runs on the wall clock: wait for its first run.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.dep.mu.Lock()
		n := h.dep.snaps
		h.dep.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no snapshot within 5 s of a 1 s schedule")
}

func TestNewRejectsBadSchedule(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{}, &recordingDeployer{}}, SnapshotSchedule: "every minute"})
	if err == nil {
		t.Fatal("bad cron spec accepted")
	}
}

var _ = sort.Strings

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
		c.SnapshotSchedule = "@every 1s"
		c.Snapshotter = snap
	})
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	select {
	case <-snap.started: // robfig/cron runs on the wall clock
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot started within 5 s of a 1 s schedule")
	}
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: "goodbye"})
	r := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a]" {
		t.Fatalf("deploy = %+v", r)
	}
	select {
	case <-snap.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the stuck snapshot was not cancelled")
	}
}
