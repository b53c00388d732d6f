package deployer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// LeaseLostError is the cause of a transition stopped because the lock of
// a target could not be renewed: another coordinator may hold it now.
type LeaseLostError struct {
	Target string
	Err    error
}

func (e *LeaseLostError) Error() string {
	return fmt.Sprintf("the lock lease on target %s was lost: %v", e.Target, e.Err)
}

func (e *LeaseLostError) Unwrap() error { return e.Err }

// Execute runs the plan against the agents with the step scheduler
// (Execute, the function): at most PerTarget steps at once on one target
// (and Parallel in all, when set), at most Uploads uploads at once in all
// (when set); on a failure,
// completed steps are undone in reverse completion order (activations
// deactivated, deactivations reactivated from the old manifest, contexts
// restored, locks released).
//
// The lock of every locked target is a lease of LockTTL, renewed every
// LockRefresh while the transition and its rollback run. When a renewal is
// refused (the agent answers an error: the lease expired or another owner
// holds the lock), or no renewal got through for LockTTL, the transition
// is cancelled with a *LeaseLostError as cause: no new step starts, the
// running ones are interrupted, and everything is rolled back (the
// returned *CancelledError names the target).
func (b *AgentBackend) Execute(ctx context.Context, plan *Plan, progress func(StepEvent)) error {
	b.init()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	x := &agentSteps{b: b, plan: plan, digests: map[int]string{}, leases: map[string]*lease{}, lost: cancel}
	defer x.stopLeases()
	return Execute(ctx, plan, x, ExecOptions{Parallel: b.Parallel, PerTarget: b.PerTarget, Uploads: b.Uploads, Progress: progress})
}

// agentSteps is the Stepper of the agent backend for one plan.
type agentSteps struct {
	b       *AgentBackend
	plan    *Plan
	lost    context.CancelCauseFunc // cancels the transition when a lease is lost
	mu      sync.Mutex
	digests map[int]string    // snapshot/transfer step ID → digest
	leases  map[string]*lease // target → the lock held on it
}

// lease is a held target lock, renewed by its own goroutine.
type lease struct {
	stop chan struct{}
	done chan struct{}
	lost bool // set (under agentSteps.mu) when a renewal failed for good
}

func (x *agentSteps) client(target string) (*agentapi.Client, error) {
	return x.b.Client(target, x.plan.New, x.plan.Old)
}

// Do carries out one step on its target's agent.
func (x *agentSteps) Do(ctx context.Context, s Step) (StepResult, error) {
	c, err := x.client(s.Target)
	if err != nil {
		return StepResult{}, err
	}
	switch s.Kind {
	case StepUpload:
		file, dir := "", false
		for _, ms := range x.plan.New.Services {
			if ms.Artifact == s.Artifact {
				file, dir = ms.Pkg, ms.ArtifactDir
				break
			}
		}
		if dir {
			tmp, err := dirArtifact(file, s.Artifact)
			if err != nil {
				return StepResult{}, err
			}
			defer os.Remove(tmp)
			file = tmp
		}
		sent, err := c.UploadArtifact(ctx, s.Artifact, file)
		if err != nil || sent {
			return StepResult{}, err
		}
		return StepResult{Skipped: true, Detail: "present"}, nil
	case StepLock:
		granted := time.Now()
		err := c.LockLease(ctx, x.b.Owner, x.b.LockTTL, false)
		var se *agentapi.StatusError
		if errors.As(err, &se) && se.Code == http.StatusConflict {
			// Our own lock, left by a transition of ours that was cut
			// short (this coordinator restarted, or the agent did before
			// the rollback could unlock): take it over as a renewal
			// instead of waiting for its lease. A lock of another owner
			// refuses the renewal as well.
			err = c.LockLease(ctx, x.b.Owner, x.b.LockTTL, true)
		}
		if err != nil {
			return StepResult{}, err
		}
		x.hold(s.Target, c, granted)
		return StepResult{}, nil
	case StepUnlock:
		x.release(s.Target)
		return StepResult{}, c.Unlock(ctx, x.b.Owner)
	case StepDeactivate:
		return StepResult{}, c.Deactivate(ctx, s.Key)
	case StepActivate:
		return StepResult{}, c.Activate(ctx, ActivateRequest(x.plan.New, s.mapping()))
	case StepSnapshot:
		info, err := c.SnapshotMapping(ctx, agentapi.ServiceRequest{Service: s.Service, Mapping: mappingRequest(x.plan.Old, s)})
		if err != nil {
			return StepResult{}, err
		}
		x.setDigest(s.ID, info.Digest)
		return StepResult{Detail: info.Digest}, nil
	case StepTransfer:
		digest := x.digest(s.Deps[0])
		from, err := x.client(s.From)
		if err != nil {
			return StepResult{}, err
		}
		if err := x.transfer(ctx, from, c, s.Service, digest); err != nil {
			return StepResult{}, err
		}
		x.setDigest(s.ID, digest)
		return StepResult{Detail: digest}, nil
	case StepRestore:
		var digest string
		for _, d := range s.Deps {
			if st := x.plan.Steps[d-1]; st.Kind == StepTransfer && st.Service == s.Service {
				digest = x.digest(d)
			}
		}
		if digest == "" {
			return StepResult{}, fmt.Errorf("no transferred snapshot of %s", s.Service)
		}
		return StepResult{Detail: digest}, c.RestoreMapping(ctx, agentapi.RestoreRequest{Service: s.Service, Digest: digest, Mapping: mappingRequest(x.plan.New, s)})
	case StepRestoreStore:
		return x.restoreFromStore(ctx, c, s)
	case StepDeleteState:
		return StepResult{}, c.DeleteState(ctx, s.Service)
	case StepUpdateContext:
		return StepResult{}, c.UpdateContext(ctx, ActivateRequest(x.plan.New, s.mapping()))
	}
	return StepResult{}, fmt.Errorf("unknown step kind %q", s.Kind)
}

// Undo reverts a step: an activation is deactivated, a deactivation
// reactivated from the old manifest, a context update restored from the
// old manifest, a held lock released (not one whose lease was lost, nor
// one whose lock request was interrupted: its lease runs out). Agent
// activations and deactivations are idempotent, so undoing an interrupted
// step is harmless. State steps are not undone: the old copy of the state
// is kept on the old target.
func (x *agentSteps) Undo(ctx context.Context, s Step) (string, error) {
	switch s.Kind {
	case StepActivate:
		c, err := x.client(s.Target)
		if err == nil {
			err = c.Deactivate(ctx, s.Key)
		}
		return "deactivate", err
	case StepDeactivate, StepUpdateContext:
		if x.plan.Old == nil {
			return "", nil
		}
		c, err := x.client(s.Target)
		req := ActivateRequest(x.plan.Old, s.mapping())
		if s.Kind == StepUpdateContext {
			if err == nil {
				err = c.UpdateContext(ctx, req)
			}
			return "previous context", err
		}
		if err == nil {
			err = c.Activate(ctx, req)
		}
		return "reactivate", err
	case StepLock:
		if !x.release(s.Target) {
			return "", nil
		}
		c, err := x.client(s.Target)
		if err == nil {
			err = c.Unlock(ctx, x.b.Owner)
		}
		return "unlock", err
	}
	return "", nil
}

// mappingRequest is the activation request of the step's mapping in man
// (nil when man does not hold its key): it tells the agent which module,
// component and container a state step is about.
func mappingRequest(man *model.Manifest, s Step) *agentapi.ActivateRequest {
	if man == nil {
		return nil
	}
	if _, ok := man.Services[s.Key]; !ok {
		return nil
	}
	req := ActivateRequest(man, s.mapping())
	return &req
}

func (s Step) mapping() model.ServiceMapping {
	return model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container}
}

func (x *agentSteps) restoreFromStore(ctx context.Context, c *agentapi.Client, s Step) (StepResult, error) {
	if x.b.Store == nil {
		return StepResult{Skipped: true, Detail: "no coordinator snapshot store (--state-dir): " + s.Service + " starts with empty state"}, nil
	}
	info, ok, err := x.b.Store.LatestSnapshot(s.Service)
	if err != nil {
		return StepResult{}, err
	}
	if !ok {
		return StepResult{Skipped: true, Detail: "no snapshot of " + s.Service + " in the store: it starts with empty state"}, nil
	}
	f, err := os.Open(x.b.Store.SnapshotPath(s.Service, info.Digest))
	if err != nil {
		return StepResult{}, err
	}
	err = c.PutSnapshot(ctx, s.Service, info.Digest, f)
	f.Close()
	if err != nil {
		return StepResult{}, err
	}
	return StepResult{Detail: fmt.Sprintf("%s (store generation %d)", info.Digest, info.Generation)},
		c.RestoreMapping(ctx, agentapi.RestoreRequest{Service: s.Service, Digest: info.Digest, Mapping: mappingRequest(x.plan.New, s)})
}

// hold records the lock of target (granted: when it was requested) and
// starts renewing its lease.
func (x *agentSteps) hold(target string, c *agentapi.Client, granted time.Time) {
	l := &lease{stop: make(chan struct{}), done: make(chan struct{})}
	x.mu.Lock()
	x.leases[target] = l
	x.mu.Unlock()
	go x.renew(target, c, l, granted)
}

// release stops renewing the lease of target and forgets it; it reports
// whether the lock was held (and not lost).
func (x *agentSteps) release(target string) bool {
	x.mu.Lock()
	l, ok := x.leases[target]
	delete(x.leases, target)
	x.mu.Unlock()
	if !ok {
		return false
	}
	close(l.stop)
	<-l.done
	x.mu.Lock()
	defer x.mu.Unlock()
	return !l.lost
}

// stopLeases stops every renewal (the transition is over).
func (x *agentSteps) stopLeases() {
	x.mu.Lock()
	var targets []string
	for t := range x.leases {
		targets = append(targets, t)
	}
	x.mu.Unlock()
	for _, t := range targets {
		x.release(t)
	}
}

// renew extends the lease of target every LockRefresh until stopped. A
// refused renewal, or none that got through for LockTTL, loses the lease:
// the transition is cancelled.
func (x *agentSteps) renew(target string, c *agentapi.Client, l *lease, granted time.Time) {
	defer close(l.done)
	t := time.NewTicker(x.b.LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(context.Background(), x.b.LockTTL/3)
		err := c.LockLease(rctx, x.b.Owner, x.b.LockTTL, true)
		cancel()
		if err == nil {
			granted = sent
			continue
		}
		var se *agentapi.StatusError
		if !errors.As(err, &se) && time.Since(granted) < x.b.LockTTL {
			continue // not answered: the lease may still run; try again
		}
		x.mu.Lock()
		l.lost = true
		x.mu.Unlock()
		x.lost(&LeaseLostError{Target: target, Err: fmt.Errorf("renewing it failed: %w", err)})
		return
	}
}

func (x *agentSteps) setDigest(id int, d string) {
	x.mu.Lock()
	x.digests[id] = d
	x.mu.Unlock()
}

func (x *agentSteps) digest(id int) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.digests[id]
}

// transfer copies a snapshot from one agent to another through the
// coordinator (its store when set, else a temporary file); both ends verify
// the sha256.
func (x *agentSteps) transfer(ctx context.Context, from, to *agentapi.Client, service, digest string) error {
	var file string
	if x.b.Store != nil {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(from.FetchSnapshot(ctx, service, digest, pw)) }()
		if _, err := x.b.Store.PutSnapshot(service, digest, pr); err != nil {
			pr.CloseWithError(err)
			return err
		}
		file = x.b.Store.SnapshotPath(service, digest)
	} else {
		tmp, err := os.CreateTemp("", "dydisnix-snapshot-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		err = from.FetchSnapshot(ctx, service, digest, tmp)
		tmp.Close()
		if err != nil {
			return err
		}
		file = tmp.Name()
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return to.PutSnapshot(ctx, service, digest, f)
}
