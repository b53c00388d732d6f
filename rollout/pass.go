package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/disnix"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/reconstruct"
)

// Transition holds the options of a transition, as dydisnix-env and
// disnix-env name them.
type Transition struct {
	// DeployState: every service's state is managed (deployState default).
	DeployState bool
	// NoMigration skips every state step.
	NoMigration bool
	// DeleteState deletes the old copy of moved state.
	DeleteState bool
	// NoLock skips locking the targets.
	NoLock bool
	// NoUpgrade ignores the previous deployment: everything is activated.
	NoUpgrade bool
}

// Config configures a Pass: the models and everything one deployment
// needs to reach the targets. Commands fill it from the shared flags.
type Config struct {
	Models Models
	// Deployer is "agent" (default: dydisnix-agents) or "disnix" (the
	// Disnix tools).
	Deployer string
	// StateDir holds the manifest generations and the snapshot store (the
	// last distribution with the Disnix deployer). Required.
	StateDir string
	// Keep is the number of snapshot generations kept per service.
	Keep int
	// Token is the agents' bearer token.
	Token string
	// Agents says how the agents are reached (mutual TLS, or plain HTTP
	// when permitted); nil reaches none.
	Agents *deployer.AgentTLS
	// Owner names this coordinator in the agents' locks (default
	// LockOwner(StateDir)).
	Owner string
	// TargetProperty is the default property holding a target's agent URL.
	TargetProperty string
	// Parallel bounds the steps run at once over all targets (-m; 0: no
	// global bound). The Disnix deployer takes it as its -m (0: 4).
	Parallel int
	// PerTarget bounds the steps run at once on one target
	// (--max-per-target; 0: deployer.DefaultPerTarget).
	PerTarget int
	// Uploads bounds the agent deployer's artifact uploads at once over
	// all targets (--max-uploads; 0: no bound).
	Uploads    int
	Transition Transition
	// Reconstruct merges what the targets report into the previous
	// manifest before the policy runs (--reconstruct).
	Reconstruct bool
	// ProbeTimeout bounds each reachability check of a target (1 s).
	ProbeTimeout time.Duration
	// Disnix holds the Disnix deployer's options, DisnixBin the directory
	// of its tools (empty: $PATH) and DisnixOutput where their output goes
	// (nil: standard error).
	Disnix       disnix.Options
	DisnixBin    string
	DisnixOutput io.Writer
	// Logger receives warnings and notes; Progress every step event with
	// the number of steps of the transition (calls are serialised).
	Logger   *zap.Logger
	Progress func(ev deployer.StepEvent, of int)
	// Shared, when set, keeps the coordinator's record beyond the state
	// directory (see SharedState; package ha: etcd). Agent deployer only.
	Shared SharedState
	// Fence, when set, returns the fencing revision every agent request
	// carries (see deployer.AgentBackend.Fence).
	Fence func() int64
}

// Request says what one Apply does besides planning.
type Request struct {
	// Reconcile lists targets that joined or returned: the services they
	// already run are compared with the manifest, and those the new
	// distribution does not place there are deactivated (never duplicated).
	Reconcile []string
	// DryRun plans the transition and changes nothing: no lock, no ports
	// or ids file written, no step executed.
	DryRun bool
	// Cordon lists targets that take no new service: the services the
	// previous distribution placed there stay where they were, the policy
	// places the others on the remaining targets.
	Cordon []string
	// Lost lists targets discovery declared lost (crashed): they count as
	// unreachable without a probe (their state is restored from the
	// store), so a dead machine costs no probe timeout.
	Lost []string
	// Progress, when set, receives every step event of this pass (after
	// Config.Progress), with the number of steps of the transition.
	Progress func(ev deployer.StepEvent, of int)
}

// Result describes a pass.
type Result struct {
	// Desired is what the policy planned (nil for a generation switch).
	Desired *Desired `json:"-"`
	// Transition is the plan of the agent deployer (nil with Disnix).
	Transition *deployer.Plan `json:"-"`
	// Command is the Disnix command line (Disnix deployer).
	Command []string `json:"-"`
	// Plan holds the transition's steps and notes, as text, in order.
	Plan []string `json:"plan"`
	// Moved lists services whose targets changed.
	Moved []string `json:"moved,omitempty"`
	// Generation is the manifest generation installed (0: none).
	Generation int `json:"generation,omitempty"`
}

// Pass is one deploy pass: discover (by the caller) → augment → plan →
// assign ports and IDs → merge with what the targets report → probe →
// plan the transition → execute → save the generation. dydisnix-env runs
// one; dydisnix-self-adapt schedules them.
type Pass struct {
	cfg     Config
	planner *Planner
	store   *deployer.Store        // agent deployer
	agents  *deployer.AgentBackend // agent deployer
	disnix  *disnix.Backend        // Disnix deployer

	// latest caches the newest manifest generation, read once per
	// generation file (latestFile: its size, time and inode), and
	// stateful its stateful services (Snapshot, SnapshotTimes: every
	// snapshot round read and parsed the whole manifest again).
	latestMu   sync.Mutex
	latest     *model.Manifest
	latestFile os.FileInfo
	stateful   []string

	// sharedVersion is the version of the shared record the working copy
	// holds (Config.Shared), sharedDigest its content's digest.
	sharedVersion int64
	sharedDigest  string
	// fenced is the fencing revision the targets were last sent
	// (raiseFence).
	fenced int64
}

// New checks cfg and opens the state directory. The models are read by
// Load.
func New(cfg Config) (*Pass, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("no state directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	p := &Pass{cfg: cfg}
	if cfg.Models.Services != "" || cfg.Models.QoS != "" {
		m := cfg.Models
		if m.ExtraParams == "" {
			m.ExtraParams = cfg.Disnix.ExtraParams // --extra-params
		}
		pl, err := NewPlanner(m, cfg.Logger)
		if err != nil {
			return nil, err
		}
		p.planner = pl
	}
	switch cfg.Deployer {
	case "", "agent":
		st, err := deployer.OpenStore(cfg.StateDir, cfg.Keep)
		if err != nil {
			return nil, err
		}
		owner := cfg.Owner
		if owner == "" {
			owner = LockOwner(cfg.StateDir)
		}
		p.store = st
		p.agents = &deployer.AgentBackend{Token: cfg.Token, Parallel: cfg.Parallel, PerTarget: cfg.PerTarget, Uploads: cfg.Uploads, Store: st, TLS: cfg.Agents, Owner: owner, Fence: cfg.Fence}
	case "disnix":
		if cfg.Shared != nil {
			return nil, errors.New("the shared coordinator state (high availability) needs the agent deployer")
		}
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		o := cfg.Disnix
		o.MaxConcurrentTransfers, o.Keep, o.DeployState = cfg.Parallel, cfg.Keep, cfg.Transition.DeployState
		if o.MaxConcurrentTransfers <= 0 {
			o.MaxConcurrentTransfers = 4
		}
		o.NoMigration, o.DeleteState, o.NoUpgrade, o.NoLock = cfg.Transition.NoMigration, cfg.Transition.DeleteState,
			cfg.Transition.NoUpgrade, cfg.Transition.NoLock
		o.TargetProperty = cfg.TargetProperty
		out := cfg.DisnixOutput
		if out == nil {
			out = os.Stderr
		}
		p.disnix = &disnix.Backend{Options: o, Bin: cfg.DisnixBin, Log: out}
	default:
		return nil, fmt.Errorf("deployer %q: expected agent or disnix", cfg.Deployer)
	}
	return p, nil
}

// LockOwner is the name under which a coordinator locks the targets. It is
// stable across restarts (host name and state directory, not the process
// id), so a coordinator killed during a transition and restarted takes over
// the locks it left behind instead of finding every target locked by a dead
// process. Two coordinators never share a state directory: the store's file
// lock forbids it.
func LockOwner(stateDir string) string {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return "dydisnix@" + host + ":" + stateDir
}

// Store returns the coordinator's store (nil with the Disnix deployer).
func (p *Pass) Store() *deployer.Store { return p.store }

// Planner returns the models' planner (nil when the pass has no models:
// generation switches and undeploy).
func (p *Pass) Planner() *Planner { return p.planner }

// Load (re)reads the model files; see Planner.Load.
func (p *Pass) Load(ctx context.Context) (string, error) {
	if p.planner == nil {
		return "", errors.New("no models")
	}
	return p.planner.Load(ctx)
}

// Augment applies the augmentation model; see Planner.Augment.
func (p *Pass) Augment(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	if p.planner == nil {
		return infra.Clone(), nil
	}
	return p.planner.Augment(ctx, infra)
}

// Usable returns the targets of infra that can take services: with the
// agent deployer, those whose agent answers and is not draining. It
// returns a note for every target left out.
func (p *Pass) Usable(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, []string) {
	if p.agents == nil {
		return infra, nil
	}
	health := p.agents.Health(ctx, infra, p.cfg.TargetProperty, 3*p.cfg.ProbeTimeout)
	usable := model.Infrastructure{}
	var notes []string
	for _, name := range infra.Names() {
		switch h := health[name]; {
		case h == nil:
			notes = append(notes, fmt.Sprintf("target %s does not answer: no service is placed on it", name))
		case h.Draining:
			notes = append(notes, fmt.Sprintf("target %s is draining: its services move away", name))
		default:
			usable[name] = infra[name]
		}
	}
	return usable, notes
}

// Current returns the distribution of the newest deployed generation (nil
// when nothing was deployed).
func (p *Pass) Current(ctx context.Context) (model.Distribution, error) {
	if p.disnix != nil {
		return p.disnixCurrent()
	}
	man, err := p.store.Latest()
	if err != nil || man == nil {
		return nil, err
	}
	return model.ManifestDistribution(man), nil
}

// Apply plans and carries out one deployment onto infra, the augmented
// infrastructure: the previous manifest (merged with what the targets
// report with Reconstruct, so the policy sees what really runs) gives the
// previous distribution, the policy and the assigners plan, and the
// transition from the previous manifest to the new one is executed and
// saved as a new generation. On failure the transition was rolled back.
func (p *Pass) Apply(ctx context.Context, infra model.Infrastructure, req Request) (res *Result, err error) {
	if p.planner == nil {
		return nil, errors.New("no models")
	}
	if p.disnix != nil {
		return p.applyDisnix(ctx, infra, req)
	}
	unlock, err := p.lock(ctx, req)
	if err != nil {
		return nil, err
	}
	defer func() { err = unlock(err) }()
	p.raiseFence(ctx, infra, req)
	old, err := p.previous(ctx, infra)
	if err != nil {
		return nil, err
	}
	var prev model.Distribution
	if old != nil {
		prev = model.ManifestDistribution(old)
	}
	desired, err := p.planner.plan(ctx, infra, prev, !req.DryRun, req.Cordon)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	man, err := deployer.BuildManifest(desired.Services, infra, desired.Distribution, deployer.BuildOptions{
		BaseDir: filepath.Dir(p.cfg.Models.Services), DeployState: p.cfg.Transition.DeployState, TargetProperty: p.cfg.TargetProperty})
	if err != nil {
		return nil, err
	}
	old = p.reconcile(ctx, old, infra, req.Reconcile)
	res, err = p.transit(ctx, old, man, req)
	if res != nil {
		res.Desired = desired
		res.Moved = Moved(prev, desired.Distribution)
	}
	return res, err
}

// ApplyManifest carries the deployment to a given manifest: a generation
// switch, a rollback or an undeploy (an empty manifest).
func (p *Pass) ApplyManifest(ctx context.Context, man *model.Manifest, req Request) (res *Result, err error) {
	if p.store == nil {
		return nil, errors.New("generations need the agent deployer (use disnix-env for Disnix)")
	}
	unlock, err := p.lock(ctx, req)
	if err != nil {
		return nil, err
	}
	defer func() { err = unlock(err) }()
	old, err := p.previous(ctx, man.Infrastructure)
	if err != nil {
		return nil, err
	}
	c := *man
	c.Generation = 0
	return p.transit(ctx, old, &c, req)
}

// lock takes the store's lock for a pass that changes something and
// brings the working copy up to date with the shared record; the returned
// unlock saves the record (its error joined to the pass's) and releases
// the lock.
func (p *Pass) lock(ctx context.Context, req Request) (unlock func(error) error, err error) {
	if req.DryRun {
		return func(err error) error { return err }, nil
	}
	release, err := p.store.Lock()
	if err != nil {
		return nil, err
	}
	if err := p.syncShared(ctx); err != nil {
		release()
		return nil, err
	}
	return func(err error) error {
		defer release()
		if serr := p.saveShared(ctx); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}, nil
}

// raiseFence sends a new fencing revision (Config.Fence: this coordinator
// was elected since the last pass) to every target of infra before
// anything else, so that the leader before it can change nothing there
// any more, even where this pass changes nothing.
func (p *Pass) raiseFence(ctx context.Context, infra model.Infrastructure, req Request) {
	if p.cfg.Fence == nil || req.DryRun {
		return
	}
	rev := p.cfg.Fence()
	if rev == 0 || rev == p.fenced {
		return
	}
	failed := p.agents.RaiseFence(ctx, infra, p.cfg.TargetProperty, p.cfg.ProbeTimeout)
	for _, t := range slices.Sorted(maps.Keys(failed)) {
		p.cfg.Logger.Warn("fence: target did not take this coordinator's revision (its first step will carry it)",
			zap.String("target", t), zap.Int64("revision", rev), zap.Error(failed[t]))
	}
	p.fenced = rev
}

// previous returns the newest manifest generation, merged with what the
// targets of infra report when the pass reconstructs.
func (p *Pass) previous(ctx context.Context, infra model.Infrastructure) (*model.Manifest, error) {
	old, err := p.store.Latest()
	if err != nil {
		return nil, err
	}
	if !p.cfg.Reconstruct {
		return old, nil
	}
	found := reconstruct.FromTargets(ctx, infra, p.cfg.TargetProperty, reconstruct.Agents{Backend: p.agents})
	for _, t := range slices.Sorted(maps.Keys(found.Unreachable)) {
		p.cfg.Logger.Warn("reconstruct: target did not report its services", zap.String("target", t), zap.Error(found.Unreachable[t]))
	}
	return reconstruct.Merge(old, found.Manifest), nil
}

// reconcile merges what the targets that joined or returned really run
// into old, so stale services are deactivated or adopted, never
// duplicated.
func (p *Pass) reconcile(ctx context.Context, old *model.Manifest, infra model.Infrastructure, targets []string) *model.Manifest {
	if len(targets) == 0 || p.cfg.Reconstruct { // a reconstruct asked every target already
		return old
	}
	sub := model.Infrastructure{}
	for _, t := range targets {
		if x, ok := infra[t]; ok {
			sub[t] = x
		}
	}
	found := reconstruct.FromTargets(ctx, sub, p.cfg.TargetProperty, reconstruct.Agents{Backend: p.agents, Timeout: 3 * p.cfg.ProbeTimeout})
	for _, t := range slices.Sorted(maps.Keys(found.Unreachable)) {
		p.cfg.Logger.Warn("reconcile: target did not report its services", zap.String("target", t), zap.Error(found.Unreachable[t]))
	}
	return reconstruct.Merge(old, found.Manifest)
}

// transit plans old → man, checking which old targets still answer (the
// state of a crashed one is restored from the store's newest snapshot; a
// reachable one, e.g. a draining machine, has its state migrated), and
// executes the plan unless it is a dry run.
func (p *Pass) transit(ctx context.Context, old, man *model.Manifest, req Request) (*Result, error) {
	unreach := p.agents.Unreachable(ctx, old, man, p.cfg.ProbeTimeout, req.Lost...)
	t := p.cfg.Transition
	plan, err := deployer.PlanTransition(old, man, deployer.PlanOptions{Unreachable: unreach, NoMigration: t.NoMigration,
		DeleteState: t.DeleteState, NoLock: t.NoLock, NoUpgrade: t.NoUpgrade})
	if err != nil {
		return nil, err
	}
	res := &Result{Transition: plan}
	for _, s := range plan.Steps {
		res.Plan = append(res.Plan, s.String())
	}
	for _, n := range plan.Notes {
		res.Plan = append(res.Plan, "note: "+n)
		if !req.DryRun {
			p.cfg.Logger.Info("note", zap.String("note", n))
		}
	}
	if req.DryRun {
		return res, nil
	}
	if old != nil && plan.Empty() { // nothing changes: the newest generation stays
		res.Generation = old.Generation
		return res, nil
	}
	var progress func(deployer.StepEvent)
	if p.cfg.Progress != nil || req.Progress != nil {
		progress = func(e deployer.StepEvent) {
			for _, f := range []func(deployer.StepEvent, int){p.cfg.Progress, req.Progress} {
				if f != nil {
					f(e, len(plan.Steps))
				}
			}
		}
	}
	gen, err := deployer.Deploy(ctx, p.agents, p.store, plan, progress)
	res.Generation = gen
	return res, err
}

// Draining asks every target's agent whether it is draining. A target that
// answers is reported (true: draining, false: not, e.g. an agent restarted
// since it drained); one that does not answer is left out (discovery's
// probe decides about it).
func (p *Pass) Draining(ctx context.Context, infra model.Infrastructure) map[string]bool {
	if p.agents == nil {
		return nil
	}
	out := map[string]bool{}
	for name, h := range p.agents.Health(ctx, infra, p.cfg.TargetProperty, p.cfg.ProbeTimeout) {
		if h != nil {
			out[name] = h.Draining
		}
	}
	return out
}

// Snapshot snapshots every stateful service of the newest generation into
// the coordinator's store (--snapshot); with Disnix it runs
// disnix-snapshot.
func (p *Pass) Snapshot(ctx context.Context) (err error) {
	if p.disnix != nil {
		return p.disnix.Snapshot(ctx, disnix.SnapshotOptions{})
	}
	unlock, err := p.lock(ctx, Request{})
	if err != nil {
		return err
	}
	defer func() { err = unlock(err) }()
	man, _, err := p.latestManifest()
	if err != nil || man == nil {
		return err
	}
	_, err = p.agents.SnapshotAll(ctx, man, p.store, nil)
	return err
}

// SnapshotTimes returns, for every stateful service of the newest
// generation, when its newest snapshot was stored (zero: none); nil with
// the Disnix deployer (its snapshots are Disnix's).
func (p *Pass) SnapshotTimes() (map[string]time.Time, error) {
	if p.store == nil {
		return nil, nil
	}
	names, err := p.statefulServices()
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(names))
	for _, name := range names {
		t, _, err := p.store.SnapshotTime(name)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// latestManifest returns the newest manifest generation (nil when there
// is none) and its stateful services. It is read again only when the
// newest generation's file is another one; callers only read it.
func (p *Pass) latestManifest() (*model.Manifest, []string, error) {
	gens, err := p.store.Generations()
	if err != nil || len(gens) == 0 {
		return nil, nil, err
	}
	gen := gens[len(gens)-1]
	fi, err := os.Stat(p.store.ManifestPath(gen))
	if err != nil {
		return nil, nil, err
	}
	p.latestMu.Lock()
	defer p.latestMu.Unlock()
	if p.latest != nil && p.latest.Generation == gen && sameFile(fi, p.latestFile) {
		return p.latest, p.stateful, nil
	}
	man, err := p.store.Manifest(gen)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, sm := range man.Snapshots {
		if name := man.Services[sm.Service].Name; !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	p.latest, p.latestFile, p.stateful = man, fi, names
	return man, names, nil
}

// sameFile reports whether a and b describe the same file unchanged.
func sameFile(a, b os.FileInfo) bool {
	return b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// statefulServices returns the services of the newest generation whose
// state is managed.
func (p *Pass) statefulServices() ([]string, error) {
	_, names, err := p.latestManifest()
	return names, err
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
		if !slices.Equal(targetsSorted(old), targetsSorted(next[s])) {
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
	slices.Sort(out)
	return out
}
