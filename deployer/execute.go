package deployer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Backend carries out a plan. Execute reports every step through
// progress (which may be nil; calls are serialised, never concurrent) and,
// when the transition does not finish, undoes what it did so that the
// previous configuration is active again; the error is then a *StepError
// (a step failed) or a *CancelledError (the context ended first). Backends
// implement it by giving Execute (the function) a Stepper.
type Backend interface {
	Execute(ctx context.Context, plan *Plan, progress func(StepEvent)) error
}

// Stepper carries out the steps of one plan for one backend; Execute (the
// function) schedules them. Do and Undo are called concurrently for
// different steps.
type Stepper interface {
	// Do carries out step s.
	Do(ctx context.Context, s Step) (StepResult, error)
	// Undo reverts step s during a rollback. It is called for every step
	// that completed and for every step a cancellation interrupted (whose
	// effect is unknown: Undo must then be harmless when s did nothing).
	// It returns what it did, shown in the progress line, or "" when s
	// needs no undo.
	Undo(ctx context.Context, s Step) (string, error)
}

// StepResult is the outcome of a step that did not fail.
type StepResult struct {
	// Detail is shown in the progress line (e.g. a snapshot digest).
	Detail string
	// Skipped reports that the step found nothing to do (e.g. an artifact
	// the target has already); Detail says why.
	Skipped bool
}

// DefaultPerTarget is the number of steps run at once on one target when
// ExecOptions (or a backend's --max-per-target) gives none.
const DefaultPerTarget = 4

// DefaultUploads is --max-uploads' default: artifact uploads at once over
// all targets. A hundred targets each receiving their artifacts at once
// all finished late (each upload shared the coordinator and the host with
// every other); four at a time, in step order, hand each target its
// artifacts early, and its services start while the next targets receive
// theirs.
const DefaultUploads = 4

// ExecOptions tune Execute.
type ExecOptions struct {
	// Parallel bounds the number of steps running at once over all
	// targets (-m; <= 0: no global bound, only PerTarget's).
	Parallel int
	// PerTarget bounds the number of steps running at once on one target
	// (<= 0: DefaultPerTarget): every target works concurrently, each
	// within its own bound.
	PerTarget int
	// Uploads bounds the artifact uploads running at once over all
	// targets (<= 0: no bound of their own). Snapshot transfers are not
	// counted: the service whose state moves is stopped by then, and must
	// not wait for the uploads of the services still to start.
	Uploads int
	// Progress receives an event for every step that starts, ends or is
	// undone (nil: none). Calls are serialised.
	Progress func(StepEvent)
}

// EventPhase says what happened to a step.
type EventPhase string

// The event phases.
const (
	PhaseStart  EventPhase = "start"
	PhaseDone   EventPhase = "done"
	PhaseFailed EventPhase = "failed"
	PhaseSkip   EventPhase = "skipped"
	PhaseUndo   EventPhase = "undo"
)

// StepEvent reports progress of one step.
type StepEvent struct {
	Step     Step
	Phase    EventPhase
	Err      error
	Detail   string
	Duration time.Duration
}

// String renders the event as one progress line.
func (e StepEvent) String() string {
	s := fmt.Sprintf("[%d] %s: %s", e.Step.ID, e.Phase, strings.TrimPrefix(e.Step.String(), fmt.Sprintf("%d. ", e.Step.ID)))
	if i := strings.Index(s, " after "); i > 0 {
		s = s[:i]
	}
	if e.Duration > 0 {
		s += fmt.Sprintf(" (%s)", e.Duration.Round(time.Millisecond))
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// StepError is the error of a transition in which a step failed: the step
// (service, target, kind), and whether the rollback failed too.
type StepError struct {
	Step        Step
	Err         error
	RollbackErr error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: %v%s", e.Step.ID, describe(e.Step), e.Err, rollbackText(e.RollbackErr))
}

func (e *StepError) Unwrap() error { return e.Err }

// CancelledError is the error of a transition whose context ended before
// every step was done and no step had failed: a signal, a deadline, or a
// backend that stopped it (e.g. a lost lock lease). No step is blamed: it
// lists the steps the cancellation interrupted and those never started.
type CancelledError struct {
	// Cause is context.Cause of the transition's context.
	Cause error
	// Interrupted are the steps that were running (their Do returned an
	// error once the context had ended); they were undone.
	Interrupted []Step
	// NotStarted are the steps that never started.
	NotStarted  []Step
	RollbackErr error
}

func (e *CancelledError) Error() string {
	msg := fmt.Sprintf("transition cancelled: %v", e.Cause)
	if len(e.Interrupted) > 0 {
		parts := make([]string, len(e.Interrupted))
		for i, s := range e.Interrupted {
			parts[i] = fmt.Sprintf("step %d (%s)", s.ID, describe(s))
		}
		msg += "; interrupted: " + strings.Join(parts, ", ")
	}
	if len(e.NotStarted) > 0 {
		msg += "; not started: " + stepIDs(e.NotStarted)
	}
	return msg + rollbackText(e.RollbackErr)
}

func (e *CancelledError) Unwrap() error { return e.Cause }

// describe names what a step acts on: "activate of service web on target t2".
func describe(s Step) string {
	what := string(s.Kind)
	if s.Service != "" {
		what += " of service " + s.Service
	}
	return what + " on target " + s.Target
}

func rollbackText(err error) string {
	if err != nil {
		return fmt.Sprintf("; ROLLBACK FAILED, the deployment is inconsistent: %v", err)
	}
	return "; rolled back to the previous configuration"
}

// stepIDs renders step numbers: "step 4" or "steps 4, 5, 9".
func stepIDs(steps []Step) string {
	ids := make([]string, len(steps))
	for i, s := range steps {
		ids[i] = fmt.Sprint(s.ID)
	}
	if len(ids) == 1 {
		return "step " + ids[0]
	}
	return "steps " + strings.Join(ids, ", ")
}

// checkPlan verifies that every step of plan can run: IDs are 1..n in
// order, every dependency names a step of the plan, and no dependency
// cycle keeps a step waiting forever. It names the steps that cannot run.
func checkRunnable(plan *Plan) error {
	if plan == nil {
		return errors.New("execute: no plan")
	}
	n := len(plan.Steps)
	remaining := make([]int, n)
	dependents := make([][]int, n)
	for i, s := range plan.Steps {
		if s.ID != i+1 {
			return fmt.Errorf("execute: invalid plan: step %d of the list has ID %d (IDs must be 1..%d in order)", i+1, s.ID, n)
		}
		for _, d := range s.Deps {
			if d < 1 || d > n {
				return fmt.Errorf("execute: invalid plan: step %d (%s) depends on step %d, which is not in the plan (steps 1..%d): it can never run", s.ID, describe(s), d, n)
			}
			remaining[i]++
			dependents[d-1] = append(dependents[d-1], i)
		}
	}
	var queue []int
	for i := range plan.Steps {
		if remaining[i] == 0 {
			queue = append(queue, i)
		}
	}
	reached := 0
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		reached++
		for _, j := range dependents[i] {
			if remaining[j]--; remaining[j] == 0 {
				queue = append(queue, j)
			}
		}
	}
	if reached == n {
		return nil
	}
	var stuck []Step
	for i, s := range plan.Steps {
		if remaining[i] > 0 {
			stuck = append(stuck, s)
		}
	}
	return fmt.Errorf("execute: invalid plan: %s can never run: their dependencies form a cycle", stepIDs(stuck))
}

// Execute carries out plan with st. It first checks that every step can
// run (see checkPlan): an invalid plan is an error before any step starts.
// Steps whose dependencies are done run in parallel, at most
// opts.PerTarget at once on one target, opts.Parallel (when set) at
// once in all, and opts.Uploads (when set) uploads at once in all; the
// ready ones start in step order, a step whose target (or, for an upload,
// the uploads) is at its bound waiting without holding up the others.
//
// When a step fails, no new step starts; once the running ones end, the
// completed steps are undone in reverse completion order and the error is
// a *StepError naming the failed step. When ctx ends first (a signal, a
// deadline, a backend cancelling with a cause), no new step starts, the
// running ones see the cancelled context, the completed and interrupted
// ones are undone (with a context that is not cancelled) and the error is
// a *CancelledError. A context that ends after the last step completed
// does not fail the transition.
func Execute(ctx context.Context, plan *Plan, st Stepper, opts ExecOptions) error {
	if err := checkRunnable(plan); err != nil {
		return err
	}
	par, per := opts.Parallel, opts.PerTarget
	if per <= 0 {
		per = DefaultPerTarget
	}
	busy := map[string]int{} // target → its running steps
	uploading := 0           // running uploads
	var progMu sync.Mutex
	emit := func(ev StepEvent) {
		if opts.Progress != nil {
			progMu.Lock()
			defer progMu.Unlock()
			opts.Progress(ev)
		}
	}
	n := len(plan.Steps)
	remaining := make([]int, n)
	dependents := make([][]int, n)
	var ready []int // step indexes, sorted
	for i, s := range plan.Steps {
		remaining[i] = len(s.Deps)
		for _, d := range s.Deps {
			dependents[d-1] = append(dependents[d-1], i)
		}
		if remaining[i] == 0 {
			ready = append(ready, i)
		}
	}
	type result struct {
		i         int
		err       error
		unstarted bool // the context had ended before the step began
	}
	results := make(chan result)
	started := make([]bool, n)
	var (
		completed   int
		undo        []int // completed and interrupted steps, in the order they ended
		interrupted []Step
		failed      *StepError
		running     int
	)
	for {
		for k := 0; k < len(ready) && (par <= 0 || running < par) && failed == nil && ctx.Err() == nil; {
			i := ready[k]
			t := plan.Steps[i].Target
			up := plan.Steps[i].Kind == StepUpload
			if busy[t] >= per || (up && opts.Uploads > 0 && uploading >= opts.Uploads) {
				k++
				continue
			}
			ready = append(ready[:k], ready[k+1:]...)
			busy[t]++
			if up {
				uploading++
			}
			started[i] = true
			running++
			go func(s Step) {
				if ctx.Err() != nil {
					results <- result{i: s.ID - 1, unstarted: true}
					return
				}
				results <- result{i: s.ID - 1, err: runStep(ctx, st, s, emit)}
			}(plan.Steps[i])
		}
		if running == 0 {
			break
		}
		r := <-results
		running--
		s := plan.Steps[r.i]
		busy[s.Target]--
		if s.Kind == StepUpload {
			uploading--
		}
		switch {
		case r.unstarted:
			started[r.i] = false
		case r.err == nil:
			completed++
			undo = append(undo, r.i)
			for _, j := range dependents[r.i] {
				if remaining[j]--; remaining[j] == 0 {
					ready = append(ready, j)
				}
			}
			sort.Ints(ready)
		case ctx.Err() != nil:
			interrupted = append(interrupted, s)
			undo = append(undo, r.i)
		case failed == nil:
			failed = &StepError{Step: s, Err: r.err}
		}
	}
	if failed == nil && completed == n {
		return nil
	}
	// Roll back with a context that is not cancelled: the original may be.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	rbErr := rollback(rctx, plan, st, undo, emit)
	if failed != nil {
		failed.RollbackErr = rbErr
		return failed
	}
	ce := &CancelledError{Cause: context.Cause(ctx), Interrupted: interrupted, RollbackErr: rbErr}
	for i, s := range plan.Steps {
		if !started[i] {
			ce.NotStarted = append(ce.NotStarted, s)
		}
	}
	return ce
}

// runStep runs one step and reports it.
func runStep(ctx context.Context, st Stepper, s Step, emit func(StepEvent)) error {
	start := time.Now()
	emit(StepEvent{Step: s, Phase: PhaseStart})
	res, err := st.Do(ctx, s)
	switch {
	case err != nil:
		emit(StepEvent{Step: s, Phase: PhaseFailed, Err: err, Duration: time.Since(start)})
	case res.Skipped:
		emit(StepEvent{Step: s, Phase: PhaseSkip, Detail: res.Detail, Duration: time.Since(start)})
	default:
		emit(StepEvent{Step: s, Phase: PhaseDone, Detail: res.Detail, Duration: time.Since(start)})
	}
	return err
}

// rollback undoes the given steps in reverse order. When a deactivation
// cannot be undone (its service is not reactivated), the deactivations of
// its dependents (the deactivations it depended on) are not undone either:
// their services could not pass their health checks without it, and each
// reactivation would only wait for the agent's start timeout; the retry
// of the transition starts them.
func rollback(ctx context.Context, plan *Plan, st Stepper, undo []int, emit func(StepEvent)) error {
	var errs []error
	blocked := map[int]int{} // deactivation step ID → the failed reactivation it needs
	for k := len(undo) - 1; k >= 0; k-- {
		s := plan.Steps[undo[k]]
		if by, ok := blocked[s.ID]; ok {
			err := fmt.Errorf("not reactivated: it needs step %d, whose undo failed", by)
			emit(StepEvent{Step: s, Phase: PhaseUndo, Detail: "reactivate", Err: err})
			errs = append(errs, fmt.Errorf("undo step %d (%s): %w", s.ID, describe(s), err))
			blockDeactivations(plan, s, by, blocked)
			continue
		}
		start := time.Now()
		what, err := st.Undo(ctx, s)
		if err != nil && s.Kind == StepDeactivate {
			blockDeactivations(plan, s, s.ID, blocked)
		}
		if what == "" && err == nil {
			continue
		}
		emit(StepEvent{Step: s, Phase: PhaseUndo, Detail: what, Err: err, Duration: time.Since(start)})
		if err != nil {
			errs = append(errs, fmt.Errorf("undo step %d (%s): %w", s.ID, describe(s), err))
		}
	}
	return errors.Join(errs...)
}

// blockDeactivations marks the deactivations s depends on (its dependents'
// deactivations) as not to be undone because of step by.
func blockDeactivations(plan *Plan, s Step, by int, blocked map[int]int) {
	for _, d := range s.Deps {
		if plan.Steps[d-1].Kind == StepDeactivate {
			if _, ok := blocked[d]; !ok {
				blocked[d] = by
			}
		}
	}
}

// Deploy executes plan with backend and, on success, installs plan.New as
// the newest generation of store (when store is not nil). It returns the
// generation number (0 without a store).
func Deploy(ctx context.Context, backend Backend, store *Store, plan *Plan, progress func(StepEvent)) (int, error) {
	if err := backend.Execute(ctx, plan, progress); err != nil {
		return 0, err
	}
	if store == nil {
		return 0, nil
	}
	return store.SaveManifest(plan.New)
}
