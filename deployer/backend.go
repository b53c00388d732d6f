package deployer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// Backend carries out a plan. Execute reports every step through
// progress (which may be nil; calls are serialised, never concurrent) and, when a step fails, undoes everything
// done so far in reverse so that the previous configuration is active
// again; the error is then a *StepError naming the step.
type Backend interface {
	Execute(ctx context.Context, plan *Plan, progress func(StepEvent)) error
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

// StepError is the error of a failed transition: the step (service,
// target, kind) that failed, and whether the rollback failed too.
type StepError struct {
	Step        Step
	Err         error
	RollbackErr error
}

func (e *StepError) Error() string {
	what := string(e.Step.Kind)
	if e.Step.Service != "" {
		what += " of service " + e.Step.Service
	}
	msg := fmt.Sprintf("step %d (%s on target %s) failed: %v", e.Step.ID, what, e.Step.Target, e.Err)
	if e.RollbackErr != nil {
		msg += fmt.Sprintf("; ROLLBACK FAILED, the deployment is inconsistent: %v", e.RollbackErr)
	} else {
		msg += "; rolled back to the previous configuration"
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// AgentBackend executes plans against dydisnix-agents.
type AgentBackend struct {
	// Token is the agents' bearer token (--agent-token-file).
	Token string
	// Parallel bounds the number of steps running at once (-m; default 4).
	Parallel int
	// Store, when set, receives every transferred snapshot (so the newest
	// state of a moved service is also on the coordinator) and provides
	// snapshots for restore-from-store steps.
	Store *Store
	// HTTP is the client used (nil: default with generous timeouts).
	HTTP *http.Client
	// Owner identifies this coordinator in agent locks (default: "dydisnix-<pid>").
	Owner string
	// LockTTL is the lease of the agents' locks (default 30s); Execute
	// refreshes held locks every LockTTL/3, so a coordinator that dies
	// mid-transition blocks its targets for at most LockTTL.
	LockTTL time.Duration

	once    sync.Once
	clients sync.Map // url → *agentapi.Client
}

var _ Backend = (*AgentBackend)(nil)

func (b *AgentBackend) init() {
	b.once.Do(func() {
		if b.Parallel <= 0 {
			b.Parallel = 4
		}
		if b.Owner == "" {
			b.Owner = fmt.Sprintf("dydisnix-%d", os.Getpid())
		}
		if b.HTTP == nil {
			b.HTTP = &http.Client{Timeout: 5 * time.Minute}
		}
		if b.LockTTL <= 0 {
			b.LockTTL = 30 * time.Second
		}
	})
}

// Client returns the agent client of a target, looked up in the given
// manifests' infrastructures in order (new first, so a target that left the
// new infrastructure is still reached through the old one).
func (b *AgentBackend) Client(target string, mans ...*model.Manifest) (*agentapi.Client, error) {
	b.init()
	for _, m := range mans {
		if m == nil {
			continue
		}
		if t, ok := m.Infrastructure[target]; ok {
			u, err := TargetAddress(t, m.TargetProperty)
			if err != nil {
				return nil, err
			}
			if c, ok := b.clients.Load(u); ok {
				return c.(*agentapi.Client), nil
			}
			c := agentapi.NewClient(u, b.Token, b.HTTP)
			b.clients.Store(u, c)
			return c, nil
		}
	}
	return nil, fmt.Errorf("target %s: not in the infrastructure", target)
}

// ClientFor returns the agent client of a target of an infrastructure.
func (b *AgentBackend) ClientFor(t *model.Target, def string) (*agentapi.Client, error) {
	m := &model.Manifest{Infrastructure: model.Infrastructure{t.Name: t}, TargetProperty: def}
	return b.Client(t.Name, m)
}

// Unreachable probes the agent of every target that old maps services to
// and every target of new's infrastructure, and returns those that do not
// answer within timeout (wrong tokens count as reachable: the transition
// will report them).
func (b *AgentBackend) Unreachable(ctx context.Context, old, new *model.Manifest, timeout time.Duration) map[string]bool {
	b.init()
	targets := map[string]bool{}
	if old != nil {
		for _, t := range old.Targets() {
			targets[t] = true
		}
	}
	if new != nil {
		for t := range new.Infrastructure {
			targets[t] = true
		}
	}
	out := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for t := range targets {
		wg.Add(1)
		go func(t string) {
			defer wg.Done()
			c, err := b.Client(t, new, old)
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, timeout)
				_, err = c.Health(cctx)
				cancel()
				var se *agentapi.StatusError
				if errors.As(err, &se) {
					err = nil
				}
			}
			if err != nil {
				mu.Lock()
				out[t] = true
				mu.Unlock()
			}
		}(t)
	}
	wg.Wait()
	return out
}

// run state shared by the steps of one execution.
type execution struct {
	b        *AgentBackend
	plan     *Plan
	mu       sync.Mutex
	digests  map[int]string // snapshot/transfer step ID → digest
	locked   map[string]bool
	progress func(StepEvent)
	progMu   sync.Mutex // progress is called by one goroutine at a time
}

// Execute runs the plan: steps whose dependencies are done run in
// parallel (at most Parallel at once). On the first failure no new step
// starts; once the running ones finish, every completed step is undone in
// reverse completion order (activations deactivated, deactivations
// reactivated from the old manifest) and the locks are released.
func (b *AgentBackend) Execute(ctx context.Context, plan *Plan, progress func(StepEvent)) error {
	b.init()
	if progress == nil {
		progress = func(StepEvent) {}
	}
	x := &execution{b: b, plan: plan, digests: map[int]string{}, locked: map[string]bool{}, progress: progress}
	n := len(plan.Steps)
	remaining := make([]int, n)
	dependents := make([][]int, n+1)
	for i, s := range plan.Steps {
		remaining[i] = len(s.Deps)
		for _, d := range s.Deps {
			dependents[d] = append(dependents[d], s.ID)
		}
	}
	type result struct {
		id  int
		err error
	}
	results := make(chan result)
	var ready []int
	for i := range plan.Steps {
		if remaining[i] == 0 {
			ready = append(ready, plan.Steps[i].ID)
		}
	}
	stopRefresh := x.refreshLocks(ctx)
	defer stopRefresh()
	var completed []int
	var failed *StepError
	running := 0
	for (len(ready) > 0 && failed == nil) || running > 0 {
		for len(ready) > 0 && running < b.Parallel && failed == nil {
			id := ready[0]
			ready = ready[1:]
			running++
			go func(id int) {
				results <- result{id, x.runStep(ctx, plan.Steps[id-1])}
			}(id)
		}
		r := <-results
		running--
		if r.err != nil {
			if failed == nil {
				failed = &StepError{Step: plan.Steps[r.id-1], Err: r.err}
			}
			continue
		}
		completed = append(completed, r.id)
		for _, d := range dependents[r.id] {
			remaining[d-1]--
			if remaining[d-1] == 0 {
				ready = append(ready, d)
			}
		}
		sort.Ints(ready)
	}
	if failed == nil && ctx.Err() != nil && len(completed) < n {
		failed = &StepError{Step: plan.Steps[len(completed)], Err: ctx.Err()}
	}
	if failed == nil {
		return nil
	}
	// Roll back with a fresh context: the original may be cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	failed.RollbackErr = x.rollback(rctx, completed)
	return failed
}

func (x *execution) emit(s Step, phase EventPhase, start time.Time, detail string, err error) {
	var d time.Duration
	if !start.IsZero() {
		d = time.Since(start)
	}
	x.progMu.Lock()
	defer x.progMu.Unlock()
	x.progress(StepEvent{Step: s, Phase: phase, Err: err, Detail: detail, Duration: d})
}

func (x *execution) runStep(ctx context.Context, s Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	x.emit(s, PhaseStart, time.Time{}, "", nil)
	detail, err := x.do(ctx, s)
	if err != nil {
		x.emit(s, PhaseFailed, start, "", err)
		return err
	}
	phase := PhaseDone
	if rest, ok := strings.CutPrefix(detail, "skipped: "); ok {
		phase, detail = PhaseSkip, rest
	}
	x.emit(s, phase, start, detail, nil)
	return nil
}

func (x *execution) client(target string) (*agentapi.Client, error) {
	return x.b.Client(target, x.plan.New, x.plan.Old)
}

func (x *execution) do(ctx context.Context, s Step) (string, error) {
	c, err := x.client(s.Target)
	if err != nil {
		return "", err
	}
	switch s.Kind {
	case StepUpload:
		file := ""
		for _, ms := range x.plan.New.Services {
			if ms.Artifact == s.Artifact {
				file = ms.Pkg
				break
			}
		}
		sent, err := c.UploadArtifact(ctx, s.Artifact, file)
		if err != nil {
			return "", err
		}
		if !sent {
			return "skipped: present", nil
		}
		return "", nil
	case StepLock:
		if err := c.LockLease(ctx, x.b.Owner, x.b.LockTTL, false); err != nil {
			return "", err
		}
		x.mu.Lock()
		x.locked[s.Target] = true
		x.mu.Unlock()
		return "", nil
	case StepUnlock:
		if err := c.Unlock(ctx, x.b.Owner); err != nil {
			return "", err
		}
		x.mu.Lock()
		delete(x.locked, s.Target)
		x.mu.Unlock()
		return "", nil
	case StepDeactivate:
		return "", c.Deactivate(ctx, s.Key)
	case StepActivate:
		req := ActivateRequest(x.plan.New, model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container})
		return "", c.Activate(ctx, req)
	case StepSnapshot:
		info, err := c.Snapshot(ctx, s.Service)
		if err != nil {
			return "", err
		}
		x.setDigest(s.ID, info.Digest)
		return info.Digest, nil
	case StepTransfer:
		digest := x.digest(s.Deps[0])
		from, err := x.client(s.From)
		if err != nil {
			return "", err
		}
		if err := x.transfer(ctx, from, c, s.Service, digest); err != nil {
			return "", err
		}
		x.setDigest(s.ID, digest)
		return digest, nil
	case StepRestore:
		var digest string
		for _, d := range s.Deps {
			if st := x.plan.Steps[d-1]; st.Kind == StepTransfer && st.Service == s.Service {
				digest = x.digest(d)
			}
		}
		if digest == "" {
			return "", fmt.Errorf("no transferred snapshot of %s", s.Service)
		}
		return digest, c.Restore(ctx, s.Service, digest)
	case StepRestoreStore:
		if x.b.Store == nil {
			return "skipped: no coordinator snapshot store (--state-dir): " + s.Service + " starts with empty state", nil
		}
		info, ok, err := x.b.Store.LatestSnapshot(s.Service)
		if err != nil {
			return "", err
		}
		if !ok {
			return "skipped: no snapshot of " + s.Service + " in the store: it starts with empty state", nil
		}
		f, err := os.Open(x.b.Store.SnapshotPath(s.Service, info.Digest))
		if err != nil {
			return "", err
		}
		err = c.PutSnapshot(ctx, s.Service, info.Digest, f)
		f.Close()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s (store generation %d)", info.Digest, info.Generation), c.Restore(ctx, s.Service, info.Digest)
	case StepDeleteState:
		return "", c.DeleteState(ctx, s.Service)
	case StepUpdateContext:
		req := ActivateRequest(x.plan.New, model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container})
		return "", c.UpdateContext(ctx, req)
	}
	return "", fmt.Errorf("unknown step kind %q", s.Kind)
}

// refreshLocks extends the leases of the held locks every LockTTL/3 until
// the returned function is called.
func (x *execution) refreshLocks(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(x.b.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			x.mu.Lock()
			var held []string
			for tg := range x.locked {
				held = append(held, tg)
			}
			x.mu.Unlock()
			for _, tg := range held {
				if c, err := x.client(tg); err == nil {
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.b.LockTTL/3)
					c.LockLease(rctx, x.b.Owner, x.b.LockTTL, true)
					cancel()
				}
			}
		}
	}()
	return func() { close(done) }
}

func (x *execution) setDigest(id int, d string) {
	x.mu.Lock()
	x.digests[id] = d
	x.mu.Unlock()
}

func (x *execution) digest(id int) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.digests[id]
}

// transfer copies a snapshot from one agent to another through the
// coordinator (its store when set, else a temporary file); both ends verify
// the sha256.
func (x *execution) transfer(ctx context.Context, from, to *agentapi.Client, service, digest string) error {
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

// rollback undoes completed steps in reverse completion order, then
// releases every lock still held.
func (x *execution) rollback(ctx context.Context, completed []int) error {
	var errs []error
	for i := len(completed) - 1; i >= 0; i-- {
		s := x.plan.Steps[completed[i]-1]
		var err error
		switch s.Kind {
		case StepActivate:
			x.emit(s, PhaseUndo, time.Time{}, "deactivate", nil)
			var c *agentapi.Client
			if c, err = x.client(s.Target); err == nil {
				err = c.Deactivate(ctx, s.Key)
			}
		case StepDeactivate:
			if x.plan.Old == nil {
				continue
			}
			x.emit(s, PhaseUndo, time.Time{}, "reactivate", nil)
			var c *agentapi.Client
			if c, err = x.client(s.Target); err == nil {
				req := ActivateRequest(x.plan.Old, model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container})
				err = c.Activate(ctx, req)
			}
		case StepUpdateContext:
			if x.plan.Old == nil {
				continue
			}
			x.emit(s, PhaseUndo, time.Time{}, "previous context", nil)
			var c *agentapi.Client
			if c, err = x.client(s.Target); err == nil {
				err = c.UpdateContext(ctx, ActivateRequest(x.plan.Old, model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container}))
			}
		case StepUnlock:
			// re-lock is pointless: the final unlock below only touches held locks
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("undo step %d (%s %s on %s): %w", s.ID, s.Kind, s.Service, s.Target, err))
		}
	}
	x.mu.Lock()
	var held []string
	for t := range x.locked {
		held = append(held, t)
	}
	x.mu.Unlock()
	sort.Strings(held)
	for _, t := range held {
		c, err := x.client(t)
		if err == nil {
			err = c.Unlock(ctx, x.b.Owner)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unlock %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
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

// SnapshotAll snapshots every snapshot mapping of man on its target and
// copies the snapshots into store (generations, store.Keep). Targets that
// do not answer are reported in the error but do not stop the others.
func (b *AgentBackend) SnapshotAll(ctx context.Context, man *model.Manifest, store *Store, progress func(string)) ([]agentapi.SnapshotInfo, error) {
	b.init()
	if progress == nil {
		progress = func(string) {}
	}
	var (
		mu   sync.Mutex
		out  []agentapi.SnapshotInfo
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, b.Parallel)
	for _, sm := range man.Snapshots {
		svc := man.Services[sm.Service]
		wg.Add(1)
		go func(sm model.ServiceMapping) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := func() error {
				c, err := b.Client(sm.Target, man)
				if err != nil {
					return err
				}
				info, err := c.Snapshot(ctx, svc.Name)
				if err != nil {
					return err
				}
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(c.FetchSnapshot(ctx, svc.Name, info.Digest, pw)) }()
				got, err := store.PutSnapshot(svc.Name, info.Digest, pr)
				pr.CloseWithError(err)
				if err != nil {
					return err
				}
				mu.Lock()
				out = append(out, got)
				mu.Unlock()
				progress(fmt.Sprintf("snapshot %s on %s: %s (store generation %d)", svc.Name, sm.Target, got.Digest, got.Generation))
				return nil
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("snapshot %s on %s: %w", svc.Name, sm.Target, err))
				mu.Unlock()
			}
		}(sm)
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, errors.Join(errs...)
}

// Health queries the agent of every target of infra in parallel and
// returns each answer (targets that do not answer within timeout are
// absent). A coordinator uses it to see draining machines
// (Health.Draining) and move their services away.
func (b *AgentBackend) Health(ctx context.Context, infra model.Infrastructure, defProp string, timeout time.Duration) map[string]*agentapi.Health {
	b.init()
	out := map[string]*agentapi.Health{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range infra {
		wg.Add(1)
		go func(t *model.Target) {
			defer wg.Done()
			c, err := b.ClientFor(t, defProp)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			h, err := c.Health(cctx)
			if err == nil {
				mu.Lock()
				out[t.Name] = h
				mu.Unlock()
			}
		}(t)
	}
	wg.Wait()
	return out
}

// HTTPClientWithCA returns an HTTP client for agents that trusts the PEM
// certificates in caFile (in addition to the system's), for agents run
// with --tls-cert/--tls-key. caFile "" returns nil (the default client).
func HTTPClientWithCA(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("agent CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("agent CA file %s: no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 5 * time.Minute, Transport: tr}, nil
}
