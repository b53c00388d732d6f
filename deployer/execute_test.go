package deployer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
)

// fakeStepper records what the scheduler asks of it. A step whose ID is in
// block waits in Do: it closes block[id].entered, then returns when
// block[id].release is closed (ctx error if honourCtx and ctx ends first).
type fakeStepper struct {
	mu        sync.Mutex
	did       []int
	undone    []int
	fail      map[int]error
	undoFail  map[int]error
	block     map[int]*gate
	honourCtx bool
}

type gate struct{ entered, release chan struct{} }

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (f *fakeStepper) Do(ctx context.Context, s deployer.Step) (deployer.StepResult, error) {
	f.mu.Lock()
	f.did = append(f.did, s.ID)
	g := f.block[s.ID]
	f.mu.Unlock()
	if g != nil {
		close(g.entered)
		if f.honourCtx {
			select {
			case <-g.release:
			case <-ctx.Done():
				return deployer.StepResult{}, ctx.Err()
			}
		} else {
			<-g.release
		}
	}
	return deployer.StepResult{}, f.fail[s.ID]
}

func (f *fakeStepper) Undo(ctx context.Context, s deployer.Step) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.undone = append(f.undone, s.ID)
	return fmt.Sprintf("undo %d", s.ID), f.undoFail[s.ID]
}

// chain returns a plan of n steps, each depending on the one before.
func chain(n int) *deployer.Plan {
	p := &deployer.Plan{}
	for i := 1; i <= n; i++ {
		s := deployer.Step{ID: i, Kind: deployer.StepActivate, Target: "t1", Service: fmt.Sprintf("s%d", i)}
		if i > 1 {
			s.Deps = []int{i - 1}
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

func ids(steps []deployer.Step) []int {
	out := []int{}
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

// TestExecuteRefusesPlansThatCannotFinish: a plan whose dependencies can
// never be met is an error naming the steps, before any step runs (it
// used to succeed with those steps silently not done, or panic).
func TestExecuteRefusesPlansThatCannotFinish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(p *deployer.Plan)
		wants []string
	}{
		{"cycle", func(p *deployer.Plan) { p.Steps[1].Deps = []int{1, 4} }, []string{"steps 2, 3, 4 can never run", "cycle"}},
		{"self dependency", func(p *deployer.Plan) { p.Steps[2].Deps = []int{3} }, []string{"steps 3, 4 can never run"}},
		{"missing step", func(p *deployer.Plan) { p.Steps[2].Deps = []int{9} }, []string{"step 3 (activate of service s3 on target t1) depends on step 9, which is not in the plan"}},
		{"step zero", func(p *deployer.Plan) { p.Steps[0].Deps = []int{0} }, []string{"step 1 ", "depends on step 0"}},
		{"IDs out of order", func(p *deployer.Plan) { p.Steps[1].ID = 7 }, []string{"step 2 of the list has ID 7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := chain(4)
			tc.edit(p)
			f := &fakeStepper{}
			err := deployer.Execute(context.Background(), p, f, deployer.ExecOptions{})
			if err == nil {
				t.Fatalf("plan that cannot finish executed without error; steps done: %v", f.did)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if len(f.did) > 0 {
				t.Errorf("steps %v ran before the plan was refused", f.did)
			}
		})
	}
	if err := deployer.Execute(context.Background(), nil, &fakeStepper{}, deployer.ExecOptions{}); err == nil {
		t.Error("nil plan executed")
	}
}

// TestExecuteCancellation: a cancelled transition reports the cancellation
// with the interrupted and never-started steps, blaming no step (it used to
// report "step N failed: context canceled" for a step that never ran).
func TestExecuteCancellation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		honourCtx       bool // the blocked step 2 returns when ctx ends
		wantInterrupted []int
		wantUndone      []int
	}{
		// Step 2 stops on cancellation: it is interrupted and undone (its
		// effect is unknown), then step 1.
		{"running step interrupted", true, []int{2}, []int{2, 1}},
		// Step 2 finishes despite the cancellation: it completed; step 3
		// must not start.
		{"running step finishes", false, []int{}, []int{2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			f := &fakeStepper{block: map[int]*gate{2: g}, honourCtx: tc.honourCtx}
			ctx, cancel := context.WithCancel(context.Background())
			var events []deployer.StepEvent
			done := make(chan error, 1)
			go func() {
				done <- deployer.Execute(ctx, chain(4), f, deployer.ExecOptions{Progress: func(e deployer.StepEvent) { events = append(events, e) }})
			}()
			<-g.entered
			cancel()
			if !tc.honourCtx {
				close(g.release)
			}
			err := <-done
			var ce *deployer.CancelledError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v, want a *CancelledError", err, err)
			}
			var se *deployer.StepError
			if errors.As(err, &se) {
				t.Errorf("cancellation blamed on step %d: %v", se.Step.ID, err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v does not wrap context.Canceled", err)
			}
			if got := ids(ce.Interrupted); !reflect.DeepEqual(got, tc.wantInterrupted) {
				t.Errorf("interrupted %v, want %v", got, tc.wantInterrupted)
			}
			if got := ids(ce.NotStarted); !reflect.DeepEqual(got, []int{3, 4}) {
				t.Errorf("not started %v, want [3 4]", got)
			}
			if !reflect.DeepEqual(f.did, []int{1, 2}) {
				t.Errorf("steps run %v, want [1 2]", f.did)
			}
			if !reflect.DeepEqual(f.undone, tc.wantUndone) {
				t.Errorf("undone %v, want %v", f.undone, tc.wantUndone)
			}
			if !strings.Contains(err.Error(), "transition cancelled: context canceled") || !strings.Contains(err.Error(), "not started: steps 3, 4") {
				t.Errorf("error text %q", err)
			}
			var undoEvents []string
			for _, e := range events {
				if e.Phase == deployer.PhaseUndo {
					undoEvents = append(undoEvents, fmt.Sprintf("%d: %s", e.Step.ID, e.Detail))
				}
			}
			if want := fmt.Sprint(tc.wantUndone[0], ": undo ", tc.wantUndone[0]); len(undoEvents) != len(tc.wantUndone) || undoEvents[0] != want {
				t.Errorf("undo events %q, want %d starting with %q", undoEvents, len(tc.wantUndone), want)
			}
		})
	}
}

// TestExecuteFailureRollsBack: the first failed step stops the start of
// new steps; the running ones finish and everything completed is undone in
// reverse completion order; the error names the failed step.
func TestExecuteFailureRollsBack(t *testing.T) {
	t.Parallel()
	// 1 and 2 are independent; 3 needs both; 2 fails while 1 is running.
	p := &deployer.Plan{Steps: []deployer.Step{
		{ID: 1, Kind: deployer.StepActivate, Target: "t1", Service: "a"},
		{ID: 2, Kind: deployer.StepActivate, Target: "t2", Service: "b"},
		{ID: 3, Kind: deployer.StepActivate, Target: "t1", Service: "c", Deps: []int{1, 2}},
	}}
	g := newGate()
	boom := errors.New("boom")
	f := &fakeStepper{block: map[int]*gate{1: g}, fail: map[int]error{2: boom}}
	done := make(chan error, 1)
	go func() {
		done <- deployer.Execute(context.Background(), p, f, deployer.ExecOptions{Parallel: 2, Progress: func(e deployer.StepEvent) {
			if e.Step.ID == 2 && e.Phase == deployer.PhaseFailed {
				close(g.release) // step 1 ends after step 2 failed
			}
		}})
	}()
	err := <-done
	var se *deployer.StepError
	if !errors.As(err, &se) || se.Step.ID != 2 || !errors.Is(err, boom) || se.RollbackErr != nil {
		t.Fatalf("error %v, want step 2's failure, rolled back", err)
	}
	if want := "step 2 (activate of service b on target t2) failed: boom; rolled back to the previous configuration"; err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	if !reflect.DeepEqual(f.undone, []int{1}) {
		t.Errorf("undone %v, want [1]", f.undone)
	}
	for _, id := range f.did {
		if id == 3 {
			t.Error("step 3 started after step 2 failed")
		}
	}
}

// TestExecuteSucceedsWhenCancelledAfterTheLastStep: a context that ends
// once everything is done does not fail the transition.
func TestExecuteSucceedsWhenCancelledAfterTheLastStep(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	g := newGate()
	f := &fakeStepper{block: map[int]*gate{2: g}}
	done := make(chan error, 1)
	go func() { done <- deployer.Execute(ctx, chain(2), f, deployer.ExecOptions{}) }()
	<-g.entered
	cancel()
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("transition whose last step completed failed: %v", err)
	}
	if len(f.undone) > 0 {
		t.Errorf("undone %v", f.undone)
	}
}

// TestPlanJSONStepsNeverNull: an empty plan's JSON has "steps": [], not
// null (dydisnix-env --dry-run --format json).
func TestPlanJSONStepsNeverNull(t *testing.T) {
	t.Parallel()
	for _, v := range []any{&deployer.Plan{}, deployer.Plan{}, &deployer.Plan{Steps: []deployer.Step{}}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != `{"steps":[]}` {
			t.Errorf("%T: JSON %s, want {\"steps\":[]}", v, b)
		}
	}
	b, _ := json.Marshal(&deployer.Plan{Steps: []deployer.Step{{ID: 1, Kind: deployer.StepLock, Target: "t1"}}, Notes: []string{"n"}})
	if want := `{"steps":[{"id":1,"kind":"lock","target":"t1"}],"notes":["n"]}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

// TestExecutePerTargetBound: steps on different targets run concurrently
// beyond the old global bound of 4 (each target within its own bound), a
// target's further steps wait for one of its own to end, and a global
// Parallel, when set, still caps the total.
func TestExecutePerTargetBound(t *testing.T) {
	t.Parallel()
	// Three targets with three independent steps each: 1-3 on t1, 4-6 on
	// t2, 7-9 on t3.
	plan := func() *deployer.Plan {
		p := &deployer.Plan{}
		for i := 1; i <= 9; i++ {
			p.Steps = append(p.Steps, deployer.Step{ID: i, Kind: deployer.StepActivate, Target: fmt.Sprintf("t%d", 1+(i-1)/3), Service: fmt.Sprintf("s%d", i)})
		}
		return p
	}
	tests := []struct {
		name      string
		opts      deployer.ExecOptions
		first     []int // the steps that run at once before any ends
		release   int   // ending this step ...
		next      int   // ... starts this one
		notBefore []int // steps that must not have started by then
	}{
		{"per target 2, no global bound", deployer.ExecOptions{PerTarget: 2}, []int{1, 2, 4, 5, 7, 8}, 4, 6, []int{3, 9}},
		{"per target 2, global 5", deployer.ExecOptions{PerTarget: 2, Parallel: 5}, []int{1, 2, 4, 5, 7}, 2, 3, []int{6, 8, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeStepper{block: map[int]*gate{}}
			for i := 1; i <= 9; i++ {
				f.block[i] = newGate()
			}
			done := make(chan error, 1)
			go func() { done <- deployer.Execute(context.Background(), plan(), f, tc.opts) }()
			wait := func(id int) { t.Helper(); waitStarted(t, f, done, id) }
			for _, id := range tc.first {
				wait(id)
			}
			close(f.block[tc.release].release)
			wait(tc.next)
			f.mu.Lock()
			for _, id := range f.did {
				if slices.Contains(tc.notBefore, id) {
					t.Errorf("step %d started beyond its bound (started: %v)", id, f.did)
				}
			}
			f.mu.Unlock()
			for i := 1; i <= 9; i++ {
				if i != tc.release {
					close(f.block[i].release)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(f.did) != 9 {
				t.Errorf("ran %v, want all 9 steps", f.did)
			}
		})
	}
}

// waitStarted waits until step id entered f's Do, failing if Execute
// (reporting on done) returned first or a minute passed.
func waitStarted(t *testing.T, f *fakeStepper, done <-chan error, id int) {
	t.Helper()
	select {
	case <-f.block[id].entered:
	case err := <-done:
		t.Fatalf("Execute returned (%v) before step %d started", err, id)
	case <-time.After(time.Minute):
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Fatalf("step %d never started; started: %v", id, f.did)
	}
}

// TestExecuteUploadBound: with Uploads set, at most that many uploads run
// at once over all targets, the ready ones in step order (a target's
// uploads before the next target's); activations and snapshot transfers
// are not held by it: a target whose artifacts are in starts its services
// while the next targets' uploads run, and a moved service's state is not
// queued behind them. Without it, every upload starts at once.
func TestExecuteUploadBound(t *testing.T) {
	t.Parallel()
	// Three targets, each with two uploads (1-2 on t1, 3-4 on t2, 5-6 on
	// t3) and an activation that needs them (7, 8, 9); a snapshot
	// transfer to t3 (10) that needs nothing.
	plan := func() *deployer.Plan {
		p := &deployer.Plan{}
		for i := 1; i <= 6; i++ {
			p.Steps = append(p.Steps, deployer.Step{ID: i, Kind: deployer.StepUpload, Target: fmt.Sprintf("t%d", 1+(i-1)/2)})
		}
		for i := 7; i <= 9; i++ {
			k := 2*(i-7) + 1
			p.Steps = append(p.Steps, deployer.Step{ID: i, Kind: deployer.StepActivate, Target: fmt.Sprintf("t%d", i-6), Service: fmt.Sprintf("s%d", i), Deps: []int{k, k + 1}})
		}
		p.Steps = append(p.Steps, deployer.Step{ID: 10, Kind: deployer.StepTransfer, Target: "t3", Service: "s10"})
		return p
	}
	type phase struct {
		release []int // ending these steps (none: the start) ...
		started []int // ... starts these
	}
	tests := []struct {
		name   string
		opts   deployer.ExecOptions
		phases []phase
		peak   int // the most uploads running at once
	}{
		{"two uploads", deployer.ExecOptions{Uploads: 2}, []phase{
			{nil, []int{1, 2, 10}},
			{[]int{1}, []int{3}},
			{[]int{2}, []int{4, 7}},
			{[]int{3, 4}, []int{5, 6, 8}},
		}, 2},
		{"no bound", deployer.ExecOptions{}, []phase{
			{nil, []int{1, 2, 3, 4, 5, 6, 10}},
			{[]int{1, 2}, []int{7}},
		}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &uploadCounter{fakeStepper: fakeStepper{block: map[int]*gate{}}}
			for i := 1; i <= 10; i++ {
				f.block[i] = newGate()
			}
			released := map[int]bool{}
			t.Cleanup(func() { // a failed check must not leave Execute blocked
				for i, g := range f.block {
					if !released[i] {
						close(g.release)
					}
				}
			})
			done := make(chan error, 1)
			go func() { done <- deployer.Execute(context.Background(), plan(), f, tc.opts) }()
			wait := func(id int) { t.Helper(); waitStarted(t, &f.fakeStepper, done, id) }
			for _, ph := range tc.phases {
				for _, id := range ph.release {
					close(f.block[id].release)
					released[id] = true
				}
				for _, id := range ph.started {
					wait(id)
				}
			}
			for i := 1; i <= 10; i++ {
				if !released[i] {
					close(f.block[i].release)
					released[i] = true
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(f.did) != 10 {
				t.Errorf("ran %v, want all 10 steps", f.did)
			}
			if f.peak != tc.peak {
				t.Errorf("at most %d uploads ran at once, want %d", f.peak, tc.peak)
			}
		})
	}
}

// uploadCounter is a fakeStepper that records the most uploads in Do at
// once.
type uploadCounter struct {
	fakeStepper
	cmu       sync.Mutex
	now, peak int
}

func (u *uploadCounter) Do(ctx context.Context, s deployer.Step) (deployer.StepResult, error) {
	if s.Kind == deployer.StepUpload {
		u.cmu.Lock()
		u.now++
		u.peak = max(u.peak, u.now)
		u.cmu.Unlock()
		defer func() {
			u.cmu.Lock()
			u.now--
			u.cmu.Unlock()
		}()
	}
	return u.fakeStepper.Do(ctx, s)
}

// waitStepper waits d in every step, as an activation waits for its health
// check.
type waitStepper struct{ d time.Duration }

func (w waitStepper) Do(ctx context.Context, s deployer.Step) (deployer.StepResult, error) {
	time.Sleep(w.d)
	return deployer.StepResult{}, nil
}

func (waitStepper) Undo(ctx context.Context, s deployer.Step) (string, error) { return "", nil }

// BenchmarkExecute1000On100 schedules a first deploy's 1000 independent
// activations on 100 targets, each waiting 2 ms: "global-4" is the old
// bound (4 steps at once in all), "per-target-4" the default (4 at once
// on each target).
func BenchmarkExecute1000On100(b *testing.B) {
	p := &deployer.Plan{}
	for i := 1; i <= 1000; i++ {
		p.Steps = append(p.Steps, deployer.Step{ID: i, Kind: deployer.StepActivate, Target: fmt.Sprintf("t%03d", i%100), Service: fmt.Sprintf("s%04d", i)})
	}
	for _, bc := range []struct {
		name string
		opts deployer.ExecOptions
	}{
		{"global-4", deployer.ExecOptions{Parallel: 4, PerTarget: 4}},
		{"per-target-4", deployer.ExecOptions{PerTarget: 4}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := deployer.Execute(context.Background(), p, waitStepper{2 * time.Millisecond}, bc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRollbackSkipsDependentsOfAFailedReactivation: when the old copy of
// a service cannot be reactivated (its agent died), its dependents are
// not reactivated either (their health checks would wait for the agent's
// start timeout, 20 s, in vain: fault matrix snapshot/agent-kill); the
// rollback error names them. Other steps are still undone.
func TestRollbackSkipsDependentsOfAFailedReactivation(t *testing.T) {
	t.Parallel()
	plan := &deployer.Plan{Steps: []deployer.Step{
		{ID: 1, Kind: deployer.StepLock, Target: "t1"},
		{ID: 2, Kind: deployer.StepDeactivate, Target: "t1", Service: "front", Deps: []int{1}},
		{ID: 3, Kind: deployer.StepDeactivate, Target: "t1", Service: "store", Deps: []int{1, 2}},
		{ID: 4, Kind: deployer.StepSnapshot, Target: "t1", Service: "store", Deps: []int{3}},
	}}
	f := &fakeStepper{fail: map[int]error{4: errors.New("agent died")}, undoFail: map[int]error{3: errors.New("connection refused")}}
	err := deployer.Execute(context.Background(), plan, f, deployer.ExecOptions{Parallel: 1})
	if !reflect.DeepEqual(f.undone, []int{3, 1}) {
		t.Errorf("undone %v, want [3 1] (front's reactivation skipped)", f.undone)
	}
	var se *deployer.StepError
	if !errors.As(err, &se) || se.RollbackErr == nil || !strings.Contains(se.RollbackErr.Error(), "undo step 2") ||
		!strings.Contains(se.RollbackErr.Error(), "not reactivated: it needs step 3") {
		t.Errorf("error %v, want a failed rollback naming the skipped step 2", err)
	}
}
