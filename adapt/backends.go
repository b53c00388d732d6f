package adapt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/disnix"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/reconstruct"
)

// AgentConfig configures an AgentDeployer.
type AgentConfig struct {
	// StateDir holds the manifest generations and the snapshot store.
	StateDir string
	// Keep is the number of snapshot generations kept per service.
	Keep int
	// Token is the agents' bearer token.
	Token string
	// Parallel bounds the steps run at once (-m).
	Parallel int
	// TargetProperty is the default property holding a target's agent URL.
	TargetProperty string
	// BaseDir resolves relative pkg paths (the services model's directory).
	BaseDir string
	// DeployState, NoMigration, DeleteState and NoLock are the
	// transition options of dydisnix-env.
	DeployState, NoMigration, DeleteState, NoLock bool
	// ProbeTimeout bounds the reachability check of old targets before
	// planning (a crashed target's state is restored from the store). 1 s.
	ProbeTimeout time.Duration
	Logger       *zap.Logger
}

// AgentDeployer deploys through dydisnix-agents, keeping manifest
// generations and snapshots in a deployer.Store. It implements Deployer
// and Snapshotter.
type AgentDeployer struct {
	cfg     AgentConfig
	store   *deployer.Store
	backend *deployer.AgentBackend
}

// NewAgentDeployer opens the state directory.
func NewAgentDeployer(cfg AgentConfig) (*AgentDeployer, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("agent deployer: no state directory")
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	st, err := deployer.OpenStore(cfg.StateDir, cfg.Keep)
	if err != nil {
		return nil, err
	}
	return &AgentDeployer{cfg: cfg, store: st, backend: &deployer.AgentBackend{Token: cfg.Token, Parallel: cfg.Parallel, Store: st,
		Owner: LockOwner(cfg.StateDir)}}, nil
}

// LockOwner is the name under which the coordinator locks the targets. It
// is stable across restarts (host name and state directory, not the
// process id), so a coordinator killed during a transition and restarted
// takes over the locks it left behind instead of finding every target
// locked by a dead process. Two coordinators never share a state
// directory: the store's file lock forbids it.
func LockOwner(stateDir string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return "dydisnix-self-adapt@" + host + ":" + stateDir
}

// Store returns the coordinator's store.
func (a *AgentDeployer) Store() *deployer.Store { return a.store }

// Current returns the distribution of the newest manifest generation.
func (a *AgentDeployer) Current(ctx context.Context) (model.Distribution, error) {
	man, err := a.store.Latest()
	if err != nil || man == nil {
		return nil, err
	}
	return ManifestDistribution(man), nil
}

// ManifestDistribution returns the distribution a manifest records.
func ManifestDistribution(m *model.Manifest) model.Distribution {
	d := model.Distribution{}
	for _, x := range m.Mappings {
		name := m.Services[x.Service].Name
		d[name] = append(d[name], model.Mapping{Target: x.Target})
	}
	return d
}

// Reconstruct merges what the targets report into the newest generation
// and installs the result as a new generation.
func (a *AgentDeployer) Reconstruct(ctx context.Context, infra model.Infrastructure) error {
	unlock, err := a.store.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	old, err := a.store.Latest()
	if err != nil {
		return err
	}
	found := reconstruct.FromTargets(ctx, infra, a.cfg.TargetProperty, reconstruct.Agents{Backend: a.backend})
	for t, err := range found.Unreachable {
		a.cfg.Logger.Warn("reconstruct: target unreachable", zap.String("target", t), zap.Error(err))
	}
	merged := reconstruct.Merge(old, found.Manifest)
	if merged == nil {
		return nil
	}
	_, err = a.store.SaveManifest(merged)
	return err
}

// Deploy builds the new manifest, merges what reconciled targets really
// run into the old one (so stale services are deactivated or adopted, never
// duplicated), checks which old targets still answer (state of a crashed
// one is restored from the store's newest snapshot; a reachable one, e.g. a
// draining machine, has its state migrated), plans and executes the
// transition, and installs the new generation. On failure the deployer has
// rolled back and unlocked the targets.
func (a *AgentDeployer) Deploy(ctx context.Context, req DeployRequest) (*DeployResult, error) {
	unlock, err := a.store.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	d := req.Desired
	man, err := deployer.BuildManifest(d.Services, d.Infrastructure, d.Distribution, deployer.BuildOptions{
		BaseDir: a.cfg.BaseDir, DeployState: a.cfg.DeployState, TargetProperty: a.cfg.TargetProperty})
	if err != nil {
		return nil, err
	}
	old, err := a.store.Latest()
	if err != nil {
		return nil, err
	}
	if len(req.Reconcile) > 0 {
		sub := model.Infrastructure{}
		for _, t := range req.Reconcile {
			if x, ok := d.Infrastructure[t]; ok {
				sub[t] = x
			}
		}
		found := reconstruct.FromTargets(ctx, sub, a.cfg.TargetProperty, reconstruct.Agents{Backend: a.backend, Timeout: a.cfg.ProbeTimeout * 3})
		for t, err := range found.Unreachable {
			a.cfg.Logger.Warn("reconcile: target did not report its services", zap.String("target", t), zap.Error(err))
		}
		old = reconstruct.Merge(old, found.Manifest)
	}
	unreach := a.backend.Unreachable(ctx, old, man, a.cfg.ProbeTimeout)
	plan, err := deployer.PlanTransition(old, man, deployer.PlanOptions{Unreachable: unreach, NoMigration: a.cfg.NoMigration,
		DeleteState: a.cfg.DeleteState, NoLock: a.cfg.NoLock})
	if err != nil {
		return nil, err
	}
	res := &DeployResult{}
	for _, s := range plan.Steps {
		res.Plan = append(res.Plan, s.String())
	}
	for _, n := range plan.Notes {
		res.Plan = append(res.Plan, "note: "+n)
	}
	var prev model.Distribution
	if old != nil {
		prev = ManifestDistribution(old)
	}
	res.Moved = Moved(prev, d.Distribution)
	if old != nil && plan.Empty() {
		return res, nil
	}
	_, err = deployer.Deploy(ctx, a.backend, a.store, plan, func(e deployer.StepEvent) {
		if e.Phase != deployer.PhaseStart {
			a.cfg.Logger.Info("step", zap.String("progress", e.String()))
		}
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// Draining asks every target's agent whether it is draining (GET
// /v1/health, 1 s timeout each, in parallel). Targets that do not answer
// are not reported (discovery's probe decides about them).
func (a *AgentDeployer) Draining(ctx context.Context, infra model.Infrastructure) map[string]bool {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]bool{}
	for name, t := range infra {
		c, err := a.backend.ClientFor(t, a.cfg.TargetProperty)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, a.cfg.ProbeTimeout)
			defer cancel()
			h, err := c.Health(hctx)
			if err == nil && h.Draining {
				mu.Lock()
				out[name] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// Snapshot snapshots every stateful service of the newest generation into
// the store (--snapshot).
func (a *AgentDeployer) Snapshot(ctx context.Context) error {
	unlock, err := a.store.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	man, err := a.store.Latest()
	if err != nil || man == nil {
		return err
	}
	_, err = a.backend.SnapshotAll(ctx, man, a.store, nil)
	return err
}

// Moved lists the services whose target set differs between two
// distributions (services only in one of them excluded), sorted.
func Moved(prev, next model.Distribution) []string {
	var out []string
	for _, s := range next.Names() {
		old, ok := prev[s]
		if !ok {
			continue
		}
		a, b := targetsSorted(old), targetsSorted(next[s])
		if fmt.Sprint(a) != fmt.Sprint(b) {
			out = append(out, s)
		}
	}
	return out
}

func targetsSorted(ms []model.Mapping) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Target)
	}
	sort.Strings(out)
	return out
}

// DisnixConfig configures a DisnixDeployer.
type DisnixConfig struct {
	// ServicesFile is given to disnix-env (-s).
	ServicesFile string
	// StateDir records the last deployed distribution (the previous
	// distribution of the next policy run).
	StateDir string
	Options  disnix.Options
	Bin      string
	Log      io.Writer
}

// DisnixDeployer runs the Disnix tools (disnix-env, disnix-snapshot,
// disnix-reconstruct). It implements Deployer and Snapshotter.
type DisnixDeployer struct {
	cfg     DisnixConfig
	backend *disnix.Backend
}

// NewDisnixDeployer returns a Disnix deployer.
func NewDisnixDeployer(cfg DisnixConfig) (*DisnixDeployer, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("disnix deployer: no state directory")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return &DisnixDeployer{cfg: cfg, backend: &disnix.Backend{Options: cfg.Options, Bin: cfg.Bin, Log: cfg.Log}}, nil
}

func (d *DisnixDeployer) distFile() string { return filepath.Join(d.cfg.StateDir, "distribution.json") }

// Current returns the last distribution deployed by this coordinator.
func (d *DisnixDeployer) Current(ctx context.Context) (model.Distribution, error) {
	if _, err := os.Stat(d.distFile()); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return model.LoadDistribution(d.distFile(), nil)
}

// Reconstruct runs disnix-reconstruct.
func (d *DisnixDeployer) Reconstruct(ctx context.Context, infra model.Infrastructure) error {
	return d.backend.Reconstruct(ctx, infra)
}

// Deploy runs disnix-env and records the distribution.
func (d *DisnixDeployer) Deploy(ctx context.Context, req DeployRequest) (*DeployResult, error) {
	prev, _ := d.Current(ctx)
	res := &DeployResult{Plan: []string{"disnix-env " + d.cfg.ServicesFile}, Moved: Moved(prev, req.Desired.Distribution)}
	if err := d.backend.Deploy(ctx, d.cfg.ServicesFile, req.Desired.Infrastructure, req.Desired.Distribution); err != nil {
		return res, err
	}
	b, err := json.MarshalIndent(req.Desired.Distribution, "", "  ")
	if err != nil {
		return res, err
	}
	return res, model.WriteFileAtomic(d.distFile(), append(b, '\n'), 0o600)
}

// Snapshot runs disnix-snapshot.
func (d *DisnixDeployer) Snapshot(ctx context.Context) error {
	return d.backend.Snapshot(ctx, disnix.SnapshotOptions{})
}

// DiscoverySource adapts a discovery.Source to the loop's Source.
type DiscoverySource struct{ Source discovery.Source }

// Run forwards the discovery snapshots until ctx ends.
func (s DiscoverySource) Run(ctx context.Context, out chan<- Snapshot) error {
	in := make(chan discovery.Snapshot, 16)
	errc := make(chan error, 1)
	go func() { errc <- s.Source.Run(ctx, in) }()
	for {
		select {
		case err := <-errc:
			return err
		case ds := <-in:
			snap := Snapshot{Infrastructure: ds.Infrastructure, At: ds.At}
			for _, e := range ds.Events {
				snap.Events = append(snap.Events, Event{Kind: string(e.Kind), Target: e.Target, Reason: e.Reason, At: e.At})
			}
			select {
			case out <- snap:
			case <-ctx.Done():
				return <-errc
			}
		}
	}
}
