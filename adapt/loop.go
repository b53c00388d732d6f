package adapt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

// Pass is one deploy pass (rollout.Pass implements it): the loop decides
// when to run one; the pass loads the models, augments, plans and deploys.
type Pass interface {
	// Load (re)reads the model files and returns a hash of their content.
	// On error the previously loaded models stay in use.
	Load(ctx context.Context) (string, error)
	// Augment returns the infrastructure with the augmentation model
	// applied (it may hold secrets: never log or publish it).
	Augment(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error)
	// Apply plans and carries out one deployment onto the augmented
	// infrastructure. It either reaches the desired configuration or rolls
	// back to the previous one and unlocks the targets before returning an
	// error; when ctx is cancelled it stops at the next step and rolls
	// back.
	Apply(ctx context.Context, infra model.Infrastructure, req rollout.Request) (*rollout.Result, error)
}

// DrainChecker is implemented by passes that can ask targets whether they
// are draining (an agent stopping gracefully). When the Pass implements it,
// the loop asks at every resync and treats a draining target as gracefully
// removed even if its mDNS goodbye was lost. Draining reports every target
// that answered: true when it drains, false when it does not (an agent
// restarted since it drained is used again).
type DrainChecker interface {
	Draining(ctx context.Context, infra model.Infrastructure) map[string]bool
}

// DrainProfiler is implemented by passes that learn both whether targets
// drain and their profiles from one question per target (rollout.Pass:
// the agents' profiles say whether they drain). A resync of a Pass that
// implements it and DrainChecker asks once per target, not twice.
// DrainingProfiles returns Draining's answer and Profiles'.
type DrainProfiler interface {
	DrainingProfiles(ctx context.Context, infra model.Infrastructure) (map[string]bool, map[string]*agentapi.Profile)
}

// Snapshotter takes snapshots of every stateful service into the
// coordinator's store (the --snapshot job). A Pass may implement it.
type Snapshotter interface {
	Snapshot(ctx context.Context) error
}

// SnapshotTimer is implemented by Snapshotters that know when the newest
// complete snapshot of each stateful service was taken (rollout.Pass, from
// its store). The loop then serves the age of each on /status, on the page
// and as a metric, with a warning when one is older than twice the
// schedule's period.
type SnapshotTimer interface {
	// SnapshotTimes returns, for every stateful service of the deployed
	// generation, when its newest complete snapshot was taken (zero:
	// none).
	SnapshotTimes() (map[string]time.Time, error)
}

// Config configures a Loop.
type Config struct {
	Source discovery.Source
	Pass   Pass
	// Snapshotter runs on SnapshotSchedule; nil disables snapshots.
	Snapshotter Snapshotter
	// SnapshotSchedule is a standard cron spec as robfig/cron/v3 parses
	// it ("@every 1m" when empty and Snapshotter is set). Its activations
	// are timers of Clock, like every other delay of the loop. A run that
	// would overlap the previous one is skipped; one due while a deploy or
	// a check runs starts right after it. Only a real deploy (one that
	// found a change) cancels a running snapshot, which is then retried
	// right after that deploy; a check that finds nothing changed never
	// does.
	SnapshotSchedule string
	// WatchFiles are watched with fsnotify; a change reloads the models.
	WatchFiles []string
	// Timing holds the delays; zero fields take DefaultTiming's values.
	Timing Timing
	// ShutdownTimeout bounds how long a running deploy may go on after the
	// loop is asked to stop before it is cancelled (and rolled back). 2 min.
	ShutdownTimeout time.Duration
	// Clock defaults to the wall clock.
	Clock Clock
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Registry receives the loop's metrics and is served on /metrics; nil
	// uses a private registry.
	Registry *prometheus.Registry
	// OnDeploy is called after every deploy that was attempted (not for
	// checks that found nothing changed). It must not block for long.
	OnDeploy func(DeployReport)
	// OnChange is called for every membership transition.
	OnChange func(MemberChange)
	// OnReady is called once the models are loaded and the loop runs
	// (dydisnix-self-adapt sends systemd's READY=1 then).
	OnReady func()
	// ControlSocket, when set, is the path of the unix socket on which
	// Serve serves the operator's endpoints (ControlHandler), mode 0600: only
	// the loop's user (and root) can pause, drain or redeploy.
	ControlSocket string
	// Leadership, when set, says whether this coordinator leads among
	// several (package ha): the loop deploys only while it leads, and the
	// status shows who leads. The Pass must stop a deploy of a term that
	// ended (package ha's Pass does).
	Leadership Leadership
	// OnStep is called after the loop has handled each event, from the
	// loop's goroutine (so in the order they were handled). It tells a
	// driver, such as a test advancing a fake Clock, what the loop has
	// consumed and whether work it started is still running. It must not
	// block for long.
	OnStep func(Step)
}

// StepEvent names the kind of event a Step handled.
type StepEvent string

// The events the loop handles.
const (
	// StepDiscovery is a snapshot from the discovery Source.
	StepDiscovery StepEvent = "discovery"
	// StepTimer is a timer of the Clock: a debounce or hysteresis
	// deadline, the resync period or the snapshot schedule.
	StepTimer StepEvent = "timer"
	// StepDeployDone is the end of a deploy or of a check.
	StepDeployDone StepEvent = "deploy-done"
	// StepDrainCheck is the answer of the targets' drain check.
	StepDrainCheck StepEvent = "drain-check"
	// StepSnapshotDone is the end of a scheduled snapshot job.
	StepSnapshotDone StepEvent = "snapshot-done"
	// StepReload is a change of a watched model file.
	StepReload StepEvent = "reload"
	// StepControl is an operator's command (Loop.Control).
	StepControl StepEvent = "control"
	// StepLeadership is a change of this coordinator's standing among
	// several (Config.Leadership).
	StepLeadership StepEvent = "leadership"
	// StepStop is the start of the shutdown (the context ended or the
	// source failed); Busy then tells whether a deploy is still running.
	StepStop StepEvent = "stop"
)

// Step describes one event the loop has handled (Config.OnStep).
type Step struct {
	Event StepEvent
	// Busy reports that a deploy, a drain check or a snapshot job started
	// by the loop is still running: its end will be a further step.
	Busy bool
}

// DeployReport describes one deploy attempt.
type DeployReport struct {
	Seq     int    `json:"seq"`
	Result  string `json:"result"` // "success" or "failure"
	Error   string `json:"error,omitempty"`
	Attempt int    `json:"attempt"`
	// Causes lists the changes this deploy answers.
	Causes    []string `json:"causes"`
	Reconcile []string `json:"reconcile,omitempty"`
	// ChangeAt is when the earliest of these changes was observed,
	// Started when the deploy started, Finished when it ended.
	ChangeAt time.Time `json:"changeAt"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// EventAt is when the earliest discovery event behind this deploy
	// happened (the event's own time, zero when no event caused it);
	// ObservedAt is when the loop saw the earliest change (ChangeAt when
	// no event was seen).
	EventAt    time.Time `json:"eventAt,omitempty"`
	ObservedAt time.Time `json:"observedAt"`
	// DetectionMs is Started-EventAt and RedeployMs Finished-EventAt:
	// measured from the event (from ObservedAt when there is none).
	DetectionMs int64 `json:"detectionMs"`
	RedeployMs  int64 `json:"redeployMs"`
	// ObservedDetectionMs and ObservedRedeployMs are measured from
	// ObservedAt, the loop's observation.
	ObservedDetectionMs int64              `json:"observedDetectionMs"`
	ObservedRedeployMs  int64              `json:"observedRedeployMs"`
	Targets             []string           `json:"targets"`
	Distribution        model.Distribution `json:"distribution,omitempty"`
	Plan                []string           `json:"plan,omitempty"`
	// Steps is the number of steps of the plan (the summary of /status
	// leaves the plan out).
	Steps int `json:"steps"`
	// Moved lists the services placed on a target they were not on in the
	// previous deployed distribution; Moves says from where to where. A
	// stale copy removed from a returning machine is not a move.
	Moved []string `json:"moved,omitempty"`
	Moves []Move   `json:"moves,omitempty"`
}

// Loop is the self-adaptive control loop.
type Loop struct {
	cfg     Config
	clock   Clock
	log     *zap.Logger
	decider *Decider
	metrics *metrics

	// schedule is the parsed SnapshotSchedule (nil: no snapshots).
	schedule cron.Schedule
	deployMu sync.Mutex // one deploy or snapshot at a time
	// explaining holds a token while /explain builds and sends an
	// explanation: one at a time (each may hold megabytes).
	explaining chan struct{}

	mu         sync.Mutex
	status     Status
	lastFull   string
	lastKey    string    // order key of the last successful deploy
	lastAugAt  time.Time // when the augmentation was last re-evaluated for it
	services   model.Services
	explain    func(context.Context) (any, error) // of the deployed plan (Desired.Explain)
	modelsHash string
	seq        int

	// draining holds targets that reported a drain; they are filtered out
	// of every snapshot until discovery stops reporting them.
	draining map[string]bool
	lastSnap *discovery.Snapshot
	// svgMu guards the picture of the last diagram drawn (svgKey is its
	// DOT text).
	svgMu          sync.Mutex
	svgKey, svgOut string
	// polling is set while the agents' profiles are asked (pollHealth);
	// polls counts the polls started, so that profiles asked beside a
	// resync's drain check are not recorded over a poll's newer answer.
	polling atomic.Bool
	polls   atomic.Uint64

	// control carries the operator's commands into Run; done is closed
	// when Run returns.
	control chan controlReq
	done    chan struct{}
	// alive carries liveness probes (Alive): Run closes each channel it
	// receives, proving its select still turns.
	alive chan chan struct{}
	// steps holds the running steps of the running deploy (by step ID).
	steps map[int]RunningStep
	// snapCancel cancels the running snapshot job (nil when none runs); a
	// deploy that found a change calls it (preemptSnapshot).
	snapCancel context.CancelCauseFunc
	// snapTimes holds, per stateful service, when its newest complete
	// snapshot was taken (zero: none); see SnapshotTimer.
	snapTimes map[string]time.Time
}

// errPreempted is the cause of a snapshot job cancelled by a deploy.
var errPreempted = errors.New("a deploy takes precedence")

// New checks cfg and returns a loop ready to Run.
func New(cfg Config) (*Loop, error) {
	if cfg.Source == nil || cfg.Pass == nil {
		return nil, errors.New("adapt: Config needs a Source and a Pass")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 2 * time.Minute
	}
	if cfg.Snapshotter != nil && cfg.SnapshotSchedule == "" {
		cfg.SnapshotSchedule = "@every 1m"
	}
	l := &Loop{cfg: cfg, clock: cfg.Clock, log: cfg.Logger, decider: NewDecider(cfg.Timing),
		control: make(chan controlReq), done: make(chan struct{}), alive: make(chan chan struct{}), steps: map[int]RunningStep{},
		explaining: make(chan struct{}, 1)}
	if cfg.SnapshotSchedule != "" {
		sched, err := cron.ParseStandard(cfg.SnapshotSchedule)
		if err != nil {
			return nil, fmt.Errorf("snapshot schedule %q: %w", cfg.SnapshotSchedule, err)
		}
		if sched.Next(cfg.Clock.Now()).IsZero() {
			return nil, fmt.Errorf("snapshot schedule %q: never activates", cfg.SnapshotSchedule)
		}
		if cfg.Snapshotter != nil {
			l.schedule = sched
		}
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	l.metrics = m
	if err := cfg.Registry.Register(newSnapshotAgeCollector(l)); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	l.status.Phase = "starting"
	return l, nil
}

type deployDone struct {
	order  *DeployOrder
	report *DeployReport
	err    error
}

// Run runs the loop until ctx is cancelled, then finishes (or, after
// ShutdownTimeout, cancels and rolls back) a running deploy and returns nil.
// It returns an error when the models cannot be loaded at start.
func (l *Loop) Run(ctx context.Context) error {
	defer close(l.done)
	l.mu.Lock()
	l.status.Started = l.clock.Now()
	l.mu.Unlock()
	if err := l.load(ctx, true); err != nil {
		return err
	}

	srcCtx, stopSrc := context.WithCancel(context.Background())
	defer stopSrc()
	snaps := make(chan discovery.Snapshot, 16)
	srcErr := make(chan error, 1)
	go func() { srcErr <- l.cfg.Source.Run(srcCtx, snaps) }()

	reload := make(chan struct{}, 1)
	if len(l.cfg.WatchFiles) > 0 {
		// The model files' directories are watched (editors replace files
		// by renaming); a watcher that fails is logged and the resync
		// still reloads the models.
		w, err := discovery.NewFileWatcher(l.cfg.WatchFiles...)
		if err != nil {
			return fmt.Errorf("watch model files: %w", err)
		}
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		go func() {
			if err := w.Run(watchCtx, reload); err != nil {
				l.log.Warn("file watcher", zap.Error(err))
			}
		}()
	}

	deployCtx, cancelDeploy := context.WithCancel(context.Background())
	defer cancelDeploy()
	done := make(chan deployDone, 1)
	running := false

	dc, _ := l.cfg.Pass.(DrainChecker)
	dp, _ := l.cfg.Pass.(DrainProfiler)
	drainRes := make(chan map[string]bool, 1)
	drainBusy := false
	l.draining = map[string]bool{}

	// The snapshot schedule runs on the loop's clock: a timer set to the
	// schedule's next activation, re-armed when it fires.
	var snapTimer Timer
	armSnapshot := func() {
		snapTimer = nil
		if l.schedule == nil {
			return
		}
		now := l.clock.Now()
		if next := l.schedule.Next(now); !next.IsZero() {
			snapTimer = l.clock.NewTimer(next.Sub(now))
		}
	}
	armSnapshot()
	snapDone := make(chan bool, 1) // true: a deploy preempted it
	// cancelSnap stops the running snapshot job (nil when none runs): a
	// deploy must never wait for a snapshot stuck on a vanished machine.
	var cancelSnap context.CancelFunc
	// snapDue is set when a snapshot is to run as soon as no deploy (or
	// check) runs: its activation came during one, or a deploy preempted
	// it.
	snapDue := false
	defer func() {
		if cancelSnap != nil {
			cancelSnap()
			<-snapDone
		}
	}()
	startSnapshot := func() {
		snapDue = false
		sctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Minute, errors.New("the snapshot took over 10 minutes"))
		cctx, cancelCause := context.WithCancelCause(sctx)
		cancelSnap = func() { cancelCause(context.Canceled); cancel() }
		l.mu.Lock()
		l.snapCancel = cancelCause
		l.mu.Unlock()
		go func() {
			snapDone <- l.snapshotJob(cctx)
		}()
	}
	l.refreshSnapshotTimes()

	var wake Timer
	resync := l.clock.NewTimer(l.decider.Timing().Resync)
	stopTimers := func() {
		for _, t := range []Timer{wake, resync, snapTimer} {
			if t != nil {
				t.Stop()
			}
		}
	}
	defer func() { stopTimers() }()
	emit := func(ev StepEvent) {
		if l.cfg.OnStep != nil {
			l.cfg.OnStep(Step{Event: ev, Busy: running || drainBusy || cancelSnap != nil})
		}
	}
	halt := func() error {
		stopTimers()
		return l.shutdown(running, done, cancelDeploy, func() { emit(StepStop) })
	}

	var leaderC <-chan Leader
	if l.cfg.Leadership != nil {
		leaderC = l.cfg.Leadership.Watch(srcCtx)
		l.decider.Decide(Observation{Kind: ObsLeadership, Leading: false}, l.clock.Now())
	}
	l.setPhase("idle")
	step := func(obs Observation) {
		now := l.clock.Now()
		act := l.decider.Decide(obs, now)
		for _, c := range act.Changes {
			l.log.Info("membership", zap.String("target", c.Target), zap.String("from", string(c.From)),
				zap.String("to", string(c.To)), zap.String("reason", c.Reason))
			if l.cfg.OnChange != nil {
				l.cfg.OnChange(c)
			}
		}
		l.updateMembers()
		if wake != nil {
			wake.Stop()
			wake = nil
		}
		if !act.Wake.IsZero() {
			wake = l.clock.NewTimer(act.Wake.Sub(now))
		}
		if act.Deploy != nil {
			running = true
			l.setPhase("deploying")
			// A running snapshot goes on: the deploy cancels it only once
			// it found a real change (execute, preemptSnapshot).
			order := act.Deploy
			go func() {
				rep, err := l.execute(deployCtx, order)
				done <- deployDone{order: order, report: rep, err: err}
			}()
		} else if !running {
			switch {
			case l.decider.Standby():
				l.setPhase("standby")
			case l.decider.Paused():
				l.setPhase("paused")
			case !l.decider.RetryAt().IsZero():
				l.setPhase("retrying")
			default:
				l.setPhase("idle")
			}
		}
	}
	step(Observation{Kind: ObsModels, ModelsHash: l.getModelsHash()})
	if l.cfg.OnReady != nil {
		l.cfg.OnReady()
	}

	for {
		var wakeC, snapC <-chan time.Time
		if wake != nil {
			wakeC = wake.C()
		}
		if snapTimer != nil {
			snapC = snapTimer.C()
		}
		select {
		case <-ctx.Done():
			return halt()
		case err := <-srcErr:
			if ctx.Err() != nil {
				return halt()
			}
			// Without discovery the loop cannot adapt: stop (cleanly) and
			// report it, so that systemd restarts the service.
			if err == nil {
				err = errors.New("source ended")
			}
			l.log.Error("discovery source stopped", zap.Error(err))
			l.mu.Lock()
			l.status.SourceError = err.Error()
			l.mu.Unlock()
			if serr := halt(); serr != nil {
				return serr
			}
			return fmt.Errorf("discovery: %w", err)
		case s := <-snaps:
			if s.At.IsZero() {
				s.At = l.clock.Now()
			}
			l.noteSnapshot(s)
			l.lastSnap = &s
			step(Observation{Kind: ObsSnapshot, Snapshot: l.withoutDraining(s, nil)})
			emit(StepDiscovery)
		case d := <-drainRes:
			drainBusy = false
			var fresh, back []string
			for t, draining := range d {
				switch {
				case draining && !l.draining[t]:
					fresh = append(fresh, t)
					l.draining[t] = true
				case !draining && l.draining[t]:
					// The agent answers and no longer drains (restarted
					// before discovery dropped its record): use it again.
					back = append(back, t)
					delete(l.draining, t)
				}
			}
			if (len(fresh) > 0 || len(back) > 0) && l.lastSnap != nil {
				sort.Strings(fresh)
				sort.Strings(back)
				if len(fresh) > 0 {
					l.log.Info("targets are draining", zap.Strings("targets", fresh))
				}
				if len(back) > 0 {
					l.log.Info("targets no longer drain", zap.Strings("targets", back))
				}
				step(Observation{Kind: ObsSnapshot, Snapshot: l.withoutDraining(*l.lastSnap, fresh)})
			}
			emit(StepDrainCheck)
		case ld := <-leaderC:
			l.log.Info("leadership", zap.Bool("leading", ld.Leading), zap.String("leader", ld.Name), zap.Int64("revision", ld.Revision))
			step(l.leadership(ld))
			emit(StepLeadership)
		case c := <-l.alive:
			close(c)
		case req := <-l.control:
			err := l.decider.CheckControl(req.c)
			if err == nil {
				l.log.Info("operator command", zap.String("command", string(req.c.Op)), zap.String("target", req.c.Target))
				step(Observation{Kind: ObsControl, Control: req.c})
			}
			req.reply <- err
			emit(StepControl)
		case <-reload:
			if err := l.load(ctx, false); err == nil {
				step(Observation{Kind: ObsModels, ModelsHash: l.getModelsHash()})
			}
			emit(StepReload)
		case <-resync.C():
			resync = l.clock.NewTimer(l.decider.Timing().Resync)
			if err := l.load(ctx, false); err == nil {
				step(Observation{Kind: ObsModels, ModelsHash: l.getModelsHash()})
			}
			step(Observation{Kind: ObsResync})
			switch {
			case drainBusy:
				// The running drain check polls the profiles when it answers.
			case dc != nil && l.lastSnap != nil && len(l.lastSnap.Infrastructure) > 0:
				drainBusy = true
				infra := l.lastSnap.Infrastructure
				if dp != nil {
					// One question per target for both: the targets
					// checked and those whose health the status shows.
					asked := maps.Clone(infra)
					l.mu.Lock()
					for name, t := range l.status.Infrastructure {
						if _, ok := asked[name]; !ok {
							asked[name] = t
						}
					}
					l.mu.Unlock()
					polls := l.polls.Load()
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						draining, profiles := dp.DrainingProfiles(ctx, asked)
						maps.DeleteFunc(draining, func(t string, _ bool) bool { _, ok := infra[t]; return !ok })
						l.recordPolled(profiles, polls)
						drainRes <- draining
					}()
				} else {
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						draining := dc.Draining(ctx, infra)
						// The profiles are asked for once the drain check
						// has answered: asked side by side, every agent kept
						// a second idle connection (TLS buffers, two
						// goroutines) for them.
						l.pollHealth()
						drainRes <- draining
					}()
				}
			default:
				l.pollHealth()
			}
			emit(StepTimer)
		case <-wakeC:
			wake = nil
			step(Observation{Kind: ObsTick})
			emit(StepTimer)
		case <-snapC:
			armSnapshot()
			switch {
			case l.decider.Standby():
				// The leader snapshots; a standby's pass would refuse.
				l.metrics.snapshots.WithLabelValues("skipped").Inc()
			case cancelSnap != nil:
				l.log.Info("snapshot skipped: the previous one still runs")
				l.metrics.snapshots.WithLabelValues("skipped").Inc()
			case running:
				l.log.Info("snapshot deferred: it starts when the running deploy or check ends")
				snapDue = true
			default:
				startSnapshot()
			}
			emit(StepTimer)
		case preempted := <-snapDone:
			cancelSnap()
			cancelSnap = nil
			l.mu.Lock()
			l.snapCancel = nil
			l.mu.Unlock()
			l.refreshSnapshotTimes()
			if preempted {
				snapDue = true
			}
			if snapDue && !running {
				startSnapshot()
			}
			emit(StepSnapshotDone)
		case d := <-done:
			running = false
			key := d.order.Key
			l.finish(d)
			step(Observation{Kind: ObsDeployDone, Key: key, Err: d.err})
			if d.report != nil {
				l.refreshSnapshotTimes() // the stateful services may have changed
			}
			if snapDue && !running && cancelSnap == nil {
				l.log.Info("snapshot retried after the deploy")
				startSnapshot()
			}
			emit(StepDeployDone)
		}
	}
}

// withoutDraining removes draining targets from a snapshot, with a
// graceful removal event for those newly found draining. A target leaves
// the draining set when discovery no longer reports it or when its agent
// answers that it does not drain.
func (l *Loop) withoutDraining(s discovery.Snapshot, fresh []string) discovery.Snapshot {
	for t := range l.draining {
		if _, ok := s.Infrastructure[t]; !ok {
			delete(l.draining, t)
		}
	}
	if len(l.draining) == 0 {
		return s
	}
	out := discovery.Snapshot{Infrastructure: model.Infrastructure{}, Events: append([]discovery.Event(nil), s.Events...), At: s.At, Conflicts: s.Conflicts}
	for name, t := range s.Infrastructure {
		if !l.draining[name] {
			out.Infrastructure[name] = t
		}
	}
	for _, t := range fresh {
		out.Events = append(out.Events, discovery.Event{Kind: discovery.EventRemoved, Target: t, Reason: discovery.ReasonDrain, At: l.clock.Now()})
	}
	return out
}

// shutdown waits for a running deploy, cancelling it (the deployer rolls
// back and unlocks) when ShutdownTimeout passes. It calls stopping once it
// waits.
func (l *Loop) shutdown(running bool, done chan deployDone, cancel context.CancelFunc, stopping func()) error {
	l.setPhase("stopping")
	if !running {
		stopping()
	} else {
		l.log.Info("waiting for the running deploy to finish", zap.Duration("timeout", l.cfg.ShutdownTimeout))
		t := l.clock.NewTimer(l.cfg.ShutdownTimeout)
		stopping()
		select {
		case d := <-done:
			t.Stop()
			l.finish(d)
		case <-t.C():
			l.log.Warn("shutdown timeout: cancelling the running deploy (rollback)")
			cancel()
			l.finish(<-done)
		}
	}
	l.setPhase("stopped")
	return nil
}

// load reloads the models. At start an error is fatal; later it is logged
// and the previous models stay in use.
func (l *Loop) load(ctx context.Context, initial bool) error {
	h, err := l.cfg.Pass.Load(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.status.ModelsError = err.Error()
		l.metrics.modelErrors.Inc()
		if initial {
			return fmt.Errorf("load models: %w", err)
		}
		l.log.Error("reloading the models failed; keeping the previous ones", zap.Error(err))
		return err
	}
	if h != l.modelsHash && !initial {
		l.log.Info("models reloaded", zap.String("hash", short(h)))
	}
	l.status.ModelsError = ""
	l.modelsHash = h
	return nil
}

func (l *Loop) getModelsHash() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.modelsHash
}

// execute carries out one order: augment, compare the full hash, reconstruct,
// plan with the previous distribution, deploy. A nil report means nothing
// changed (a check).
//
// The check runs beside a snapshot job; only once it found a change does
// the deploy cancel a running snapshot (which the loop retries after it)
// and wait for it to end.
func (l *Loop) execute(ctx context.Context, order *DeployOrder) (*DeployReport, error) {
	started := l.clock.Now()
	// A check of unchanged input (resync) re-evaluates the augmentation
	// (secrets from files or the environment may have changed; a .nix
	// augmentation runs nix-instantiate) at most once a minute.
	l.mu.Lock()
	quiet := order.Key == l.lastKey && len(order.Reconcile) == 0 && started.Sub(l.lastAugAt) < time.Minute && !order.Force
	l.mu.Unlock()
	if quiet {
		return nil, nil
	}
	aug, err := l.cfg.Pass.Augment(ctx, order.Infrastructure)
	if err != nil {
		return l.report(order, started, nil, fmt.Errorf("augment: %w", err)), err
	}
	full := fullHash(order.Key, aug)
	l.mu.Lock()
	same := full == l.lastFull && len(order.Reconcile) == 0 && !order.Force
	if same {
		l.lastAugAt = started
	}
	l.mu.Unlock()
	if same {
		return nil, nil
	}
	l.log.Info("change detected: redeploying", zap.Strings("causes", order.Causes), zap.Int("attempt", order.Attempt),
		zap.Strings("targets", order.Infrastructure.Names()), zap.Strings("reconcile", order.Reconcile))
	l.preemptSnapshot()
	l.deployMu.Lock()
	defer l.deployMu.Unlock()
	res, err := l.cfg.Pass.Apply(ctx, aug, rollout.Request{Reconcile: order.Reconcile, Cordon: order.Cordon, Lost: order.Lost, Progress: l.progress})
	if err != nil {
		err = fmt.Errorf("deploy: %w", err)
		return l.report(order, started, res, err), err
	}
	desired := res.Desired
	l.mu.Lock()
	l.lastFull, l.lastKey, l.lastAugAt = full, order.Key, started
	l.services = desired.Services
	l.explain = desired.Explain
	l.mu.Unlock()
	return l.report(order, started, res, nil), nil
}

func (l *Loop) report(order *DeployOrder, started time.Time, res *rollout.Result, err error) *DeployReport {
	now := l.clock.Now()
	l.mu.Lock()
	l.seq++
	seq := l.seq
	l.mu.Unlock()
	r := &DeployReport{
		Seq: seq, Result: "success", Attempt: order.Attempt, Causes: order.Causes, Reconcile: order.Reconcile,
		ChangeAt: order.Since, Started: started, Finished: now,
		Targets: order.Infrastructure.Names(),
	}
	l.timings(r, order.Since)
	if res != nil {
		if res.Desired != nil {
			r.Distribution = res.Desired.Distribution
			l.mu.Lock()
			prev := l.status.Distribution
			l.mu.Unlock()
			r.Moves = moves(prev, r.Distribution)
			for _, m := range r.Moves {
				r.Moved = append(r.Moved, m.Service)
			}
		}
		r.Plan, r.Steps = res.Plan, len(res.Plan)
	}
	if err != nil {
		r.Result, r.Error = "failure", err.Error()
	}
	return r
}

// finish records a finished deploy in the status, the metrics and the log.
func (l *Loop) finish(d deployDone) {
	l.mu.Lock()
	clear(l.steps)
	l.status.Running = nil
	l.mu.Unlock()
	if d.report == nil {
		l.metrics.checks.Inc()
		l.mu.Lock()
		l.status.LastCheck = l.clock.Now()
		if d.err == nil {
			// The system matches its models again: an earlier failure
			// is over.
			l.status.DeployError = ""
		}
		l.mu.Unlock()
		return
	}
	r := d.report
	if d.err != nil {
		l.metrics.redeploys.WithLabelValues("failure").Inc()
		l.metrics.failures.Inc()
		l.log.Error("redeploy failed; will retry", zap.Int("seq", r.Seq), zap.Int("attempt", r.Attempt), zap.Error(d.err))
	} else {
		l.metrics.redeploys.WithLabelValues("success").Inc()
		l.metrics.detection.Observe(r.Started.Sub(r.ChangeAt).Seconds())
		l.metrics.redeploy.Observe(r.Finished.Sub(r.ChangeAt).Seconds())
		l.log.Info("redeployed", zap.Int("seq", r.Seq), zap.Int64("detectionMs", r.DetectionMs),
			zap.Int64("redeployMs", r.RedeployMs), zap.Strings("moved", r.Moved), zap.Int("steps", len(r.Plan)))
	}
	l.mu.Lock()
	l.status.LastDeploy = r
	past := *r
	past.Distribution = nil // the history stays small; LastDeploy has it
	l.status.Deploys = keepLast(append(l.status.Deploys, past))
	l.status.DeployError = ""
	if d.err == nil {
		l.status.Distribution = r.Distribution
		l.metrics.services.Set(float64(len(r.Distribution)))
	} else {
		l.status.DeployError = r.Error
	}
	l.mu.Unlock()
	if d.err == nil {
		l.pollHealth()
	}
	if l.cfg.OnDeploy != nil {
		l.cfg.OnDeploy(*r)
	}
}

// preemptSnapshot cancels the running snapshot job, if any, for a deploy
// that found a change (a snapshot is best effort: the deploy migrates live
// state or restores from the store itself). The loop retries it after the
// deploy.
func (l *Loop) preemptSnapshot() {
	l.mu.Lock()
	cancel := l.snapCancel
	l.mu.Unlock()
	if cancel != nil {
		cancel(errPreempted)
	}
}

// snapshotJob is the scheduled --snapshot job; the loop starts it only
// while no deploy runs, and a deploy that found a change cancels ctx with
// errPreempted. It reports whether a deploy preempted it (or got the
// targets first): the loop then runs it again after that deploy.
func (l *Loop) snapshotJob(ctx context.Context) (preempted bool) {
	if !l.deployMu.TryLock() {
		l.log.Info("snapshot deferred: a deploy is running")
		return true
	}
	defer l.deployMu.Unlock()
	if err := l.cfg.Snapshotter.Snapshot(ctx); err != nil {
		if errors.Is(context.Cause(ctx), errPreempted) {
			l.log.Info("snapshot cancelled: a deploy takes precedence; it is retried after the deploy")
			l.metrics.snapshots.WithLabelValues("cancelled").Inc()
			return true
		}
		l.log.Error("snapshot failed", zap.Error(err))
		l.metrics.snapshots.WithLabelValues("failure").Inc()
		return false
	}
	l.metrics.snapshots.WithLabelValues("success").Inc()
	l.mu.Lock()
	l.status.LastSnapshot = l.clock.Now()
	l.mu.Unlock()
	return false
}

// refreshSnapshotTimes reads when each stateful service's newest complete
// snapshot was taken, when the Snapshotter tells (SnapshotTimer).
func (l *Loop) refreshSnapshotTimes() {
	st, ok := l.cfg.Snapshotter.(SnapshotTimer)
	if !ok || l.schedule == nil {
		return
	}
	times, err := st.SnapshotTimes()
	if err != nil {
		l.log.Warn("reading the snapshots' times", zap.Error(err))
		return
	}
	l.mu.Lock()
	l.snapTimes = times
	l.mu.Unlock()
}

func (l *Loop) noteSnapshot(s discovery.Snapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	for _, e := range s.Events {
		ev := e
		l.status.LastEvent = &ev
		l.status.Events = keepLast(append(l.status.Events, newEventRecord(e, now)))
		l.log.Info("discovery event", zap.String("kind", string(e.Kind)), zap.String("target", e.Target), zap.String("reason", e.Reason))
	}
	l.status.Discovered = s.Infrastructure.Names()
	l.status.Conflicts = s.Conflicts
}

func (l *Loop) updateMembers() {
	ms := l.decider.Members()
	counts := map[MemberState]int{MemberUp: 0, MemberLeaving: 0, MemberDown: 0, MemberProbation: 0}
	for _, m := range ms {
		counts[m.State]++
	}
	for st, n := range counts {
		l.metrics.targets.WithLabelValues(string(st)).Set(float64(n))
	}
	l.mu.Lock()
	l.status.Targets = ms
	l.status.Draining = sortedKeys(l.draining)
	if l.decider.matches() {
		// The system matches its models again: an earlier failure is
		// over (a newer change superseded its retry).
		l.status.DeployError = ""
	}
	l.status.Infrastructure = l.decider.used()
	if r := l.decider.RetryAt(); !r.IsZero() {
		l.status.RetryAt = &r
	} else {
		l.status.RetryAt = nil
	}
	l.mu.Unlock()
}

func (l *Loop) setPhase(p string) {
	l.mu.Lock()
	l.status.Phase = p
	l.mu.Unlock()
}

// fullHash hashes the order's key with the augmented infrastructure (the
// original hashes the evaluated augmented infrastructure).
func fullHash(key string, aug model.Infrastructure) string {
	b, err := json.Marshal(aug)
	if err != nil {
		b = []byte(err.Error())
	}
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
