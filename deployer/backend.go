package deployer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// AgentBackend executes plans against dydisnix-agents.
type AgentBackend struct {
	// Token is the agents' bearer token (--agent-token-file).
	Token string
	// Parallel bounds the number of steps running at once over all
	// targets (-m; 0: no global bound).
	Parallel int
	// PerTarget bounds the number of steps running at once on one target
	// (--max-per-target; 0: DefaultPerTarget).
	PerTarget int
	// Uploads bounds the artifact uploads running at once over all
	// targets (--max-uploads; 0: no bound of their own): the ready ones
	// start in step order, so that a target gets its artifacts together
	// and starts its services while others still receive theirs.
	Uploads int
	// SnapshotParallel bounds the snapshots a SnapshotAll round takes at
	// once over all targets (0: Parallel when that is set, else
	// DefaultSnapshotParallel). Every one ends in the coordinator's store: a
	// round of a hundred stateful services at once was a burst of a
	// hundred snapshots and fsyncs that stalled a loaded host for seconds.
	SnapshotParallel int
	// Store, when set, receives every transferred snapshot (so the newest
	// state of a moved service is also on the coordinator) and provides
	// snapshots for restore-from-store steps.
	Store *Store
	// TLS says how the agents are reached (see AgentTLS); nil reaches
	// none.
	TLS *AgentTLS
	// Owner identifies this coordinator in agent locks (default: "dydisnix-<pid>").
	Owner string
	// LockTTL is the lease of the agents' locks (default 30s; whole
	// seconds, at least 1): a coordinator that dies mid-transition blocks
	// its targets for at most LockTTL.
	LockTTL time.Duration
	// LockRefresh is how often Execute renews the held leases (default
	// LockTTL/3). A lease that cannot be renewed stops the transition.
	LockRefresh time.Duration
	// Fence, when set, returns the fencing revision every agent request
	// carries (agentapi.HeaderFence): the coordinator's election revision
	// while it leads among several (package ha), 0 otherwise.
	Fence func() int64

	once    sync.Once
	clients sync.Map // hostname + " " + url → *agentapi.Client
}

var _ Backend = (*AgentBackend)(nil)

// DefaultSnapshotParallel is the number of snapshots a SnapshotAll round
// takes at once when AgentBackend.SnapshotParallel is not set.
const DefaultSnapshotParallel = 8

func (b *AgentBackend) init() {
	b.once.Do(func() {
		if b.PerTarget <= 0 {
			b.PerTarget = DefaultPerTarget
		}
		if b.Owner == "" {
			b.Owner = fmt.Sprintf("dydisnix-%d", os.Getpid())
		}
		if b.LockTTL <= 0 {
			b.LockTTL = 30 * time.Second
		}
		if b.LockRefresh <= 0 {
			b.LockRefresh = b.LockTTL / 3
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
			key := TargetHostname(t) + " " + u
			if c, ok := b.clients.Load(key); ok {
				return c.(*agentapi.Client), nil
			}
			hc, err := b.TLS.Client(t, u)
			if err != nil {
				return nil, err
			}
			nc := agentapi.NewClient(u, b.Token, hc)
			nc.Fence = b.Fence
			c, _ := b.clients.LoadOrStore(key, nc)
			return c.(*agentapi.Client), nil
		}
	}
	return nil, fmt.Errorf("target %s: not in the infrastructure", target)
}

// ClientFor returns the agent client of a target of an infrastructure.
func (b *AgentBackend) ClientFor(t *model.Target, def string) (*agentapi.Client, error) {
	m := &model.Manifest{Infrastructure: model.Infrastructure{t.Name: t}, TargetProperty: def}
	return b.Client(t.Name, m)
}

// ProbeResult is one target's answer to a health probe.
type ProbeResult struct {
	// Health is the agent's answer; nil when Err is set.
	Health *agentapi.Health
	// Err says why there is no answer: no agent address, no connection
	// within the timeout, or an error status (an *agentapi.StatusError,
	// e.g. 401 for a wrong token: that agent is up).
	Err error
}

// Probe asks the agent of every target of infra for its health (GET
// /v1/health), all in parallel, each within timeout, and returns one
// result per target. defProp is the default target property (see
// TargetAddress).
func (b *AgentBackend) Probe(ctx context.Context, infra model.Infrastructure, defProp string, timeout time.Duration) map[string]ProbeResult {
	names := make([]string, 0, len(infra))
	for name := range infra {
		names = append(names, name)
	}
	return b.probe(ctx, names, func(name string) (*agentapi.Client, error) { return b.ClientFor(infra[name], defProp) }, timeout)
}

// probe is the one health-probe loop (see askAll).
func (b *AgentBackend) probe(ctx context.Context, names []string, client func(string) (*agentapi.Client, error), timeout time.Duration) map[string]ProbeResult {
	out := make(map[string]ProbeResult, len(names))
	for name, r := range askAll(ctx, b, names, client, timeout, (*agentapi.Client).Health) {
		if r.err != nil {
			r.value = nil
		}
		out[name] = ProbeResult{Health: r.value, Err: r.err}
	}
	return out
}

// Profiles asks the agent of every target of infra for its profile (what
// it runs, with each service's health and restart count), in parallel,
// each within timeout. Targets that do not answer are left out.
func (b *AgentBackend) Profiles(ctx context.Context, infra model.Infrastructure, defProp string, timeout time.Duration) map[string]*agentapi.Profile {
	names := make([]string, 0, len(infra))
	for name := range infra {
		names = append(names, name)
	}
	out := map[string]*agentapi.Profile{}
	for name, r := range askAll(ctx, b, names, func(name string) (*agentapi.Client, error) { return b.ClientFor(infra[name], defProp) },
		timeout, (*agentapi.Client).Profile) {
		if r.err == nil {
			out[name] = r.value
		}
	}
	return out
}

type answer[T any] struct {
	value T
	err   error
}

// askAll is the one per-target loop of the coordinator: it asks every
// named target's agent, as client resolves it, in parallel, each within
// timeout, and returns one answer per target.
func askAll[T any](ctx context.Context, b *AgentBackend, names []string, client func(string) (*agentapi.Client, error),
	timeout time.Duration, ask func(*agentapi.Client, context.Context) (T, error)) map[string]answer[T] {
	b.init()
	out := make(map[string]answer[T], len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r answer[T]
			c, err := client(name)
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, timeout)
				r.value, err = ask(c, actx)
				cancel()
			}
			r.err = err
			mu.Lock()
			out[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// RaiseFence sends this coordinator's fencing revision (Fence) to the
// agent of every target of infra, in parallel, each within timeout, so
// that they refuse the late requests of a coordinator that led before,
// even where this one has nothing to change. It returns the targets that
// did not take it, with why.
func (b *AgentBackend) RaiseFence(ctx context.Context, infra model.Infrastructure, defProp string, timeout time.Duration) map[string]error {
	names := make([]string, 0, len(infra))
	for name := range infra {
		names = append(names, name)
	}
	out := map[string]error{}
	for name, r := range askAll(ctx, b, names, func(name string) (*agentapi.Client, error) { return b.ClientFor(infra[name], defProp) }, timeout,
		func(c *agentapi.Client, ctx context.Context) (struct{}, error) { return struct{}{}, c.RaiseFence(ctx) }) {
		if r.err != nil {
			out[name] = r.err
		}
	}
	return out
}

// Unreachable probes the agent of every target that old maps services to
// and every target of new's infrastructure (each reached through new's
// infrastructure, else old's), and returns those that do not answer within
// timeout. An error status (e.g. a wrong token) counts as reachable: the
// transition will report it. The targets listed in lost (known to be gone,
// e.g. declared lost by discovery) are reported unreachable without a
// probe.
func (b *AgentBackend) Unreachable(ctx context.Context, old, new *model.Manifest, timeout time.Duration, lost ...string) map[string]bool {
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
	for _, t := range lost {
		if targets[t] {
			out[t] = true
			delete(targets, t)
		}
	}
	names := make([]string, 0, len(targets))
	for t := range targets {
		names = append(names, t)
	}
	for name, r := range b.probe(ctx, names, func(t string) (*agentapi.Client, error) { return b.Client(t, new, old) }, timeout) {
		var se *agentapi.StatusError
		if r.Err != nil && !errors.As(r.Err, &se) {
			out[name] = true
		}
	}
	return out
}

// Health returns the answers of the agents of infra that answer a Probe
// (the others are absent). A coordinator uses it to see draining machines
// (Health.Draining) and move their services away.
func (b *AgentBackend) Health(ctx context.Context, infra model.Infrastructure, defProp string, timeout time.Duration) map[string]*agentapi.Health {
	out := map[string]*agentapi.Health{}
	for name, r := range b.Probe(ctx, infra, defProp, timeout) {
		if r.Err == nil {
			out[name] = r.Health
		}
	}
	return out
}

// SnapshotAll snapshots every snapshot mapping of man on its target and
// copies the snapshots into store (generations, store.Keep), at most
// SnapshotParallel at once; a snapshot the store has as its newest is
// renewed there, not copied again. Targets that do not answer are reported in
// the error but do not stop the others.
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
	par := b.SnapshotParallel
	if par <= 0 {
		par = b.Parallel
	}
	if par <= 0 {
		par = DefaultSnapshotParallel
	}
	lim := newLimiter(par, b.PerTarget)
	for _, sm := range man.Snapshots {
		svc := man.Services[sm.Service]
		wg.Add(1)
		go func(sm model.ServiceMapping) {
			defer wg.Done()
			defer lim.acquire(sm.Target)()
			err := func() error {
				c, err := b.Client(sm.Target, man)
				if err != nil {
					return err
				}
				req := ActivateRequest(man, sm)
				info, err := c.SnapshotMapping(ctx, agentapi.ServiceRequest{Service: svc.Name, Mapping: &req})
				if err != nil {
					return err
				}
				got, renewed, err := store.Renew(svc.Name, info.Digest)
				if err != nil {
					return err
				}
				note := ", unchanged"
				if !renewed {
					note = ""
					pr, pw := io.Pipe()
					go func() { pw.CloseWithError(c.FetchSnapshot(ctx, svc.Name, info.Digest, pw)) }()
					got, err = store.PutSnapshot(svc.Name, info.Digest, pr)
					pr.CloseWithError(err)
					if err != nil {
						return err
					}
				}
				mu.Lock()
				out = append(out, got)
				mu.Unlock()
				progress(fmt.Sprintf("snapshot %s on %s: %s%s (store generation %d)", svc.Name, sm.Target, got.Digest, note, got.Generation))
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

// limiter bounds concurrent work per target and, when global > 0, in all.
type limiter struct {
	global  chan struct{}
	per     int
	mu      sync.Mutex
	targets map[string]chan struct{}
}

func newLimiter(global, per int) *limiter {
	l := &limiter{per: per, targets: map[string]chan struct{}{}}
	if global > 0 {
		l.global = make(chan struct{}, global)
	}
	return l
}

// acquire waits for a slot on target and returns its release.
func (l *limiter) acquire(target string) (release func()) {
	l.mu.Lock()
	t, ok := l.targets[target]
	if !ok {
		t = make(chan struct{}, l.per)
		l.targets[target] = t
	}
	l.mu.Unlock()
	t <- struct{}{}
	if l.global != nil {
		l.global <- struct{}{}
	}
	return func() {
		if l.global != nil {
			<-l.global
		}
		<-t
	}
}
