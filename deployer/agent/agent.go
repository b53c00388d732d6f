// Package agent is dydisnix-agent's server: the embedded deployment backend
// that runs on every target. It supervises process services as child
// processes, keeps their state directories and snapshots, and keeps the
// target's profile manifest on disk so that the agent (and the coordinator,
// through reconstruct) can recover after a restart.
//
// State directory layout:
//
//	artifacts/<sha256-hex>             uploaded executables and component tarballs (content addressed)
//	components/<hash>-<service>/       a directory artifact unpacked (the component path of a module)
//	dysnomia/                          the Dysnomia store of the modules (DYSNOMIA_STATEDIR)
//	mappings/<service>.json            the last mapping of a module-typed service
//	state/<service>/                   state directory of a service (DYDISNIX_STATE_DIR)
//	snapshots/<service>/<hex>.tar.gz   snapshots (gzip tarballs of the state directory)
//	snapshots/<service>/generations.json  the snapshot generations, oldest first
//	run/<key>.json                     pid, start time and executable of a running process
//	context/<key>.json                 the DYDISNIX_CONTEXT file of a service
//	logs/<service>.log                 stdout and stderr of a service
//	profile.json                       the profile manifest (what this target runs)
//	lock.json                          the transition lock: owner and lease expiry
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/clock"
	"github.com/dydisnix/dydisnix/model"
)

// Version is reported by /v1/health.
const Version = "dydisnix-agent/1"

// Config configures an agent. Zero values take the documented defaults.
type Config struct {
	// StateDir holds everything the agent keeps (see the package doc).
	StateDir string
	// Token is the bearer token every request must carry.
	Token []byte
	// Keep is the number of snapshot generations kept per service (default 2).
	Keep int
	// StartTimeout bounds how long an activation waits for the process to
	// run and its health check to pass (default 20s).
	StartTimeout time.Duration
	// Settle is how long a process without a health check must stay up to
	// count as running (default 300ms), catching immediate crashes. A
	// process with a health check counts as running once the check passes.
	Settle time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL (default 5s); a
	// process is given as long again to show its exit after SIGKILL.
	StopGrace time.Duration
	// Logger receives structured logs (default: no logs).
	Logger *zap.Logger
	// Clock runs the lock leases and the drain deadline (default: the
	// wall clock).
	Clock clock.Clock
	// LogMaxBytes is the size past which a service's log (logs/NAME.log)
	// is rotated (default 10 MiB); LogKeep the number of rotated copies
	// kept (NAME.log.1 newest, default 3); LogCheck how often the sizes
	// are checked (default 30s; also before every start of a process).
	LogMaxBytes int64
	LogKeep     int
	LogCheck    time.Duration
	// Registry receives the agent's metrics, served on /metrics (nil: a
	// private registry).
	Registry *prometheus.Registry
	// MaxUpload bounds the size of an uploaded artifact or snapshot
	// (default 1 GiB); a larger upload is refused with 413.
	MaxUpload int64
	// MaxExtract bounds the bytes a restore writes (the sum of the
	// snapshot's file sizes, default 1 GiB) and MaxEntries its number of
	// entries (default 100000); a snapshot over either is refused (413)
	// before its oversized entry is written.
	MaxExtract int64
	MaxEntries int
	// FaultDir enables the test-only fault hook (see fault.go): the
	// operation named by a file in it blocks or fails. Empty (the
	// default) disables it; only the agent's own environment sets it
	// (DYDISNIX_AGENT_FAULT_DIR), never a request.
	FaultDir string
	// ModulesPath is the colon-separated list of directories searched for
	// Dysnomia modules before the built-ins ("": $DYSNOMIA_MODULES_PATH).
	ModulesPath string
	// ModuleTimeout bounds each operation of a Dysnomia module (default
	// 10m): past it the module's process group is killed and the step fails.
	ModuleTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Keep <= 0 {
		c.Keep = 2
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 20 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 300 * time.Millisecond
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Clock = clock.OrReal(c.Clock)
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = 10 << 20
	}
	if c.LogKeep <= 0 {
		c.LogKeep = 3
	}
	if c.LogCheck <= 0 {
		c.LogCheck = 30 * time.Second
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.MaxUpload <= 0 {
		c.MaxUpload = 1 << 30
	}
	if c.MaxExtract <= 0 {
		c.MaxExtract = 1 << 30
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100000
	}
	if c.ModuleTimeout <= 0 {
		c.ModuleTimeout = 10 * time.Minute
	}
}

// Agent is a running agent.
type Agent struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	stopLog chan struct{} // closed by Close: the log rotation ends
	logOnce sync.Once

	mu        sync.Mutex
	profile   map[string]*entry // by key
	garbage   map[string]bool   // service names whose state is garbage
	lockOwner string
	lockUntil time.Time // zero: no expiry
	draining  bool
	drainEnd  time.Time
	closing   bool          // Close was called: no activation may add a process
	changed   chan struct{} // closed and replaced whenever the profile changes
	opMu      sync.Mutex    // serialises state operations per agent (snapshot/restore/delete)

	pending  sync.WaitGroup      // activations in flight (Close waits for them)
	keys     map[string]*keyLock // per-key serialisation of activate/deactivate (guarded by mu)
	stopping context.Context     // cancelled by Close: in-flight activations give up
	stopAll  context.CancelFunc  // cancels stopping

	fence fence // the highest coordinator revision accepted (fence.go)
}

type entry struct {
	Req  agentapi.ActivateRequest `json:"request"`
	proc *proc
}

type storedProfile struct {
	Entries []*entry `json:"entries"`
	Garbage []string `json:"garbage"`
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// New opens the agent's state directory and resumes supervision of the
// services of its profile manifest: processes that still run (same pid,
// start time and executable) are adopted, the others restarted.
func New(cfg Config) (*Agent, error) {
	cfg.defaults()
	if cfg.StateDir == "" {
		return nil, errors.New("agent: no state directory")
	}
	if len(cfg.Token) == 0 {
		return nil, errors.New("agent: empty token")
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("agent: state dir: %w", err)
	}
	cfg.StateDir = abs
	for _, d := range []string{"artifacts", "state", "snapshots", "run", "context", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("agent: state dir: %w", err)
		}
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, profile: map[string]*entry{}, garbage: map[string]bool{}, changed: make(chan struct{}),
		stopLog: make(chan struct{})}
	if a.metrics, err = newMetrics(a, cfg.Registry); err != nil {
		return nil, fmt.Errorf("agent: metrics: %w", err)
	}
	a.stopping, a.stopAll = context.WithCancel(context.Background())
	if cfg.FaultDir != "" {
		a.log.Warn("the test-only fault hook is enabled: operations named by files in its directory block or fail", zap.String("dir", cfg.FaultDir))
	}
	b, err := os.ReadFile(a.path("profile.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("agent: read profile: %w", err)
	default:
		var sp storedProfile
		if err := json.Unmarshal(b, &sp); err != nil {
			return nil, fmt.Errorf("agent: %s: %w", a.path("profile.json"), err)
		}
		for _, g := range sp.Garbage {
			a.garbage[g] = true
		}
		for _, e := range sp.Entries {
			a.profile[e.Req.Key] = e
		}
	}
	if err := a.loadLock(); err != nil {
		return nil, err
	}
	// Kill processes recorded for keys no longer in the profile (crash during deactivate).
	if ents, err := os.ReadDir(a.path("run")); err == nil {
		for _, de := range ents {
			key := strings.TrimSuffix(de.Name(), ".json")
			if _, ok := a.profile[key]; !ok {
				killRecorded(a.path("run", de.Name()), cfg.StopGrace)
			}
		}
	}
	for _, key := range sortedKeys(a.profile) {
		e := a.profile[key]
		if e.Req.Service.Type != "process" {
			continue
		}
		p, err := a.newProc(e.Req)
		if err != nil {
			// It cannot run here any more (e.g. its artifact is gone): drop it
			// from the profile so that the coordinator activates it again.
			a.log.Warn("cannot resume service; removed from the profile", zap.String("service", e.Req.Service.Name), zap.Error(err))
			delete(a.profile, key)
			a.saveProfile()
			continue
		}
		e.proc = p
		pid := findProcess(p.pidFile)
		if pid > 0 {
			a.log.Info("adopted running process", zap.String("service", e.Req.Service.Name), zap.Int("pid", pid))
		} else {
			a.log.Info("restarting process", zap.String("service", e.Req.Service.Name))
		}
		go p.run(pid)
	}
	go a.rotateLoop(a.stopLog)
	return a, nil
}

func (a *Agent) path(elems ...string) string {
	return filepath.Join(append([]string{a.cfg.StateDir}, elems...)...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// saveProfile writes profile.json atomically; the caller holds a.mu.
func (a *Agent) saveProfile() error {
	sp := storedProfile{Garbage: sortedKeys(a.garbage)}
	for _, k := range sortedKeys(a.profile) {
		sp.Entries = append(sp.Entries, a.profile[k])
	}
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	a.notifyLocked()
	return model.WriteFileAtomic(a.path("profile.json"), b, 0o600)
}

// notifyLocked wakes up waiters on a.changed; the caller holds a.mu.
func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *Agent) newProc(req agentapi.ActivateRequest) (*proc, error) {
	svc := req.Service
	name := svc.Name
	if !safeName.MatchString(name) {
		return nil, fmt.Errorf("service name %q: expected letters, digits, '.', '_', '+', '-'", name)
	}
	var exe string
	args := append([]string(nil), svc.Args...)
	if svc.ArtifactDir {
		var err error
		if exe, err = a.componentExe(req); err != nil {
			return nil, err
		}
	} else if svc.Artifact != "" {
		hex := strings.TrimPrefix(svc.Artifact, "sha256:")
		if !hexDigest.MatchString(hex) {
			return nil, fmt.Errorf("artifact %q: expected sha256:<64 hex digits>", svc.Artifact)
		}
		exe = a.path("artifacts", hex)
		if _, err := os.Stat(exe); err != nil {
			return nil, fmt.Errorf("artifact %s not uploaded", svc.Artifact)
		}
	} else if len(args) > 0 {
		exe, args = args[0], args[1:]
		if !filepath.IsAbs(exe) {
			lp, err := lookPath(exe)
			if err != nil {
				return nil, err
			}
			exe = lp
		}
	} else {
		return nil, fmt.Errorf("process service %s has neither an artifact nor a command", name)
	}
	stateDir := a.path("state", name)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	env, err := a.writeContext(req, stateDir)
	if err != nil {
		return nil, err
	}
	return &proc{key: req.Key, name: name, exe: exe, args: args, env: env, dir: stateDir,
		logFile: a.path("logs", name+".log"), pidFile: a.path("run", req.Key+".json"), log: a.log, metrics: a.metrics,
		rotate: func(file string) {
			if _, err := rotateLog(file, a.cfg.LogMaxBytes, a.cfg.LogKeep); err != nil {
				a.log.Warn("rotate service log", zap.String("service", name), zap.Error(err))
			}
		},
		health: svc.HealthCheck, grace: a.cfg.StopGrace,
		started: make(chan struct{}), stopCh: make(chan struct{}), detachCh: make(chan struct{}), done: make(chan struct{})}, nil
}

// writeContext writes the DYDISNIX_CONTEXT file of a mapping and returns
// the process environment.
func (a *Agent) writeContext(req agentapi.ActivateRequest, stateDir string) ([]string, error) {
	ctxFile := a.path("context", req.Key+".json")
	ctxDoc := map[string]any{}
	for k, v := range req.Context {
		ctxDoc[k] = v
	}
	ctxDoc["stateDir"] = stateDir
	ctxDoc["env"] = req.Env
	cb, err := json.MarshalIndent(ctxDoc, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := model.WriteFileAtomic(ctxFile, cb, 0o600); err != nil {
		return nil, err
	}
	env := os.Environ()
	for _, k := range sortedKeys(req.Env) {
		if strings.HasPrefix(k, "DYDISNIX_") {
			env = append(env, k+"="+req.Env[k])
		}
	}
	env = append(env, "DYDISNIX_STATE_DIR="+stateDir, "DYDISNIX_CONTEXT="+ctxFile)
	if _, ok := req.Env["DYDISNIX_SERVICE"]; !ok {
		env = append(env, "DYDISNIX_SERVICE="+req.Service.Name)
	}
	return env, nil
}

// UpdateContext replaces the environment and context of an active key
// without restarting its process: the context file is rewritten now, the
// environment applies from the next restart.
func (a *Agent) UpdateContext(req agentapi.ActivateRequest) error {
	if !safeName.MatchString(req.Key) {
		return &httpError{400, fmt.Sprintf("update context: bad key %q", req.Key)}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.profile[req.Key]
	if !ok {
		return &httpError{404, fmt.Sprintf("update context: key %s is not active", req.Key)}
	}
	env, err := a.writeContext(req, a.path("state", e.Req.Service.Name))
	if err != nil {
		return err
	}
	e.Req.Env, e.Req.Context = req.Env, req.Context
	if e.proc != nil {
		e.proc.mu.Lock()
		e.proc.env = env
		e.proc.mu.Unlock()
	}
	return a.saveProfile()
}

// Activate starts a mapping and waits until it runs and is healthy.
// Activating a key that is active already is a no-op (idempotent).
func (a *Agent) Activate(ctx context.Context, req agentapi.ActivateRequest) error {
	unlockKey, err := a.lockKey(ctx, req.Key)
	if err != nil {
		return err
	}
	defer unlockKey()
	a.mu.Lock()
	if a.draining || a.closing {
		a.mu.Unlock()
		return &httpError{503, "agent is draining or stopping: no new activations"}
	}
	if e, ok := a.profile[req.Key]; ok {
		if e.proc != nil {
			a.mu.Unlock()
			return a.waitHealthy(ctx, e.proc)
		}
		if e.Req.Service.Type != "process" {
			a.mu.Unlock()
			return nil
		}
		delete(a.profile, req.Key) // a process that could not be resumed: start afresh
	}
	a.pending.Add(1) // under a.mu, before Close can see closing
	a.mu.Unlock()
	defer a.pending.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.stopping, cancel)()
	if !safeName.MatchString(req.Key) || req.Service.Name == "" {
		return &httpError{400, "activate: a key (letters, digits, '.', '_', '+', '-') and service.name are required"}
	}
	e := &entry{Req: req}
	switch req.Service.Type {
	case "process":
		p, err := a.newProc(req)
		if err != nil {
			return &httpError{400, fmt.Sprintf("activate %s: %v", req.Service.Name, err)}
		}
		e.proc = p
		go p.run(0)
		if err := a.waitHealthy(ctx, p); err != nil {
			p.stop()
			return fmt.Errorf("activate %s: %w", req.Service.Name, err)
		}
	case "package", "echo":
		// nothing runs: the service lives in the profile only
	default:
		// A Dysnomia module: the type's module activates the component.
		if err := a.runModule(ctx, req, "activate", false); err != nil {
			return err
		}
		if err := a.saveMapping(req); err != nil {
			return err
		}
	}
	a.mu.Lock()
	if a.closing {
		// Close did not see this process: stop it here, so that stopping
		// the agent stops every process it started.
		a.mu.Unlock()
		if e.proc != nil {
			e.proc.stop()
		}
		return &httpError{503, fmt.Sprintf("activate %s: the agent is stopping", req.Service.Name)}
	}
	defer a.mu.Unlock()
	a.profile[req.Key] = e
	delete(a.garbage, req.Service.Name)
	if err := a.saveProfile(); err != nil {
		return err
	}
	a.log.Info("activated", zap.String("service", req.Service.Name), zap.String("key", req.Key))
	return nil
}

// waitHealthy waits until the process runs (for Settle without exiting)
// and its health check passes; an exit before that fails the activation.
func (a *Agent) waitHealthy(ctx context.Context, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.StartTimeout)
	defer cancel()
	select {
	case <-p.started:
	case <-ctx.Done():
		return fmt.Errorf("process did not start: %w", ctx.Err())
	}
	p.mu.Lock()
	exits0 := p.exits
	p.mu.Unlock()
	fail := func(what string) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		return fmt.Errorf("%s (%s); last log lines: %s", what, p.lastErr, tail(p.logFile, 5))
	}
	settle := time.NewTimer(a.cfg.Settle)
	defer settle.Stop()
	// The health check is polled from 10 ms on, each wait half as long
	// again as the one before, up to 200 ms: a fast service is seen at
	// once, and a fleet starting hundreds of services on a loaded host is
	// not flooded with checks of services still starting.
	pause := 10 * time.Millisecond
	tick := time.NewTimer(pause)
	defer tick.Stop()
	// With a health check, its passing is the evidence; without one the
	// process must survive Settle (catching immediate crashes).
	settled := p.health != ""
	var healthErr error // the last check's failure
	for {
		p.mu.Lock()
		exits, running := p.exits, p.running
		p.mu.Unlock()
		if exits > exits0 || (!running && exits > 0 && exits0 == 0) {
			return fail("process exited during start-up")
		}
		if running && settled {
			if p.health == "" {
				return nil
			}
			if healthErr = checkHealth(ctx, p.health); healthErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if p.health != "" {
				what := "health check " + p.health + " did not pass in time"
				if healthErr != nil {
					what += ": " + healthErr.Error()
				}
				return fail(what)
			}
			return fail("process did not start in time")
		case <-settle.C:
			settled = true
		case <-tick.C:
			pause = min(pause*3/2, 200*time.Millisecond)
			tick.Reset(pause)
		}
	}
}

func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Deactivate stops a mapping (the process group is killed; state is kept
// and marked as garbage). Deactivating an unknown key is a no-op.
func (a *Agent) Deactivate(ctx context.Context, key string) error {
	if !safeName.MatchString(key) {
		return &httpError{400, fmt.Sprintf("deactivate: bad key %q", key)}
	}
	// An activation of the key in flight finishes first (a coordinator
	// that gave up on it undoes it with this deactivation: its process
	// must not start after the deactivation returned).
	unlockKey, err := a.lockKey(ctx, key)
	if err != nil {
		return err
	}
	defer unlockKey()
	a.mu.Lock()
	e, ok := a.profile[key]
	a.mu.Unlock()
	if !ok {
		return nil
	}
	if e.proc != nil {
		e.proc.stop()
	}
	if moduleType(e.Req.Service.Type) {
		if err := a.runModule(ctx, e.Req, "deactivate", false); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.profile, key)
	os.Remove(a.path("context", key+".json"))
	if e.Req.Service.DeployState {
		still := false
		for _, o := range a.profile {
			if o.Req.Service.Name == e.Req.Service.Name {
				still = true
			}
		}
		if !still {
			a.garbage[e.Req.Service.Name] = true
		}
	}
	a.log.Info("deactivated", zap.String("service", e.Req.Service.Name), zap.String("key", key))
	return a.saveProfile()
}

// Profile returns the profile manifest with the live state of each process.
func (a *Agent) Profile(ctx context.Context) agentapi.Profile {
	a.mu.Lock()
	entries := make([]*entry, 0, len(a.profile))
	for _, k := range sortedKeys(a.profile) {
		entries = append(entries, a.profile[k])
	}
	garbage := sortedKeys(a.garbage)
	draining := a.draining
	a.mu.Unlock()
	out := agentapi.Profile{Services: []agentapi.ProfileEntry{}, Garbage: garbage, Draining: &draining}
	for _, e := range entries {
		pe := agentapi.ProfileEntry{Key: e.Req.Key, Target: e.Req.Target, Container: e.Req.Container, Service: e.Req.Service}
		if e.proc != nil {
			pid, running, restarts := e.proc.status()
			pe.Pid, pe.Running, pe.Restarts = pid, running, restarts
			pe.Healthy = running && (e.proc.health == "" || checkHealth(ctx, e.proc.health) == nil)
		} else if e.Req.Service.Type != "process" {
			pe.Running, pe.Healthy = true, true // nothing to run: present is active
		} // else: a process that could not be resumed (reported not running)
		out.Services = append(out.Services, pe)
	}
	return out
}

// lockHeldLocked reports whether a lock is held and not expired; an
// expired lease is released. The caller holds a.mu.
func (a *Agent) lockHeldLocked() bool {
	if a.lockOwner != "" && !a.lockUntil.IsZero() && !a.cfg.Clock.Now().Before(a.lockUntil) {
		a.log.Warn("lock lease expired", zap.String("owner", a.lockOwner))
		a.lockOwner, a.lockUntil = "", time.Time{}
		if err := a.saveLock("", time.Time{}); err != nil {
			a.log.Warn("record the expired lock", zap.Error(err))
		}
		a.notifyLocked()
	}
	return a.lockOwner != ""
}

// storedLock is lock.json: the transition lock survives a restart of the
// agent (a coordinator mid-transition finds the target still locked by
// it until the lease runs out).
type storedLock struct {
	Owner string `json:"owner,omitempty"`
	// Until is the lease expiry (RFC 3339); empty: no expiry.
	Until string `json:"until,omitempty"`
}

// saveLock writes lock.json atomically (removes it when owner is empty).
func (a *Agent) saveLock(owner string, until time.Time) error {
	file := a.path("lock.json")
	if owner == "" {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("agent: remove %s: %w", file, err)
		}
		return nil
	}
	sl := storedLock{Owner: owner}
	if !until.IsZero() {
		sl.Until = until.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(sl)
	if err != nil {
		return err
	}
	if err := model.WriteFileAtomic(file, b, 0o600); err != nil {
		return fmt.Errorf("agent: record the lock: %w", err)
	}
	return nil
}

// loadLock restores the lock recorded in lock.json (an expired lease is
// dropped by the next lockHeldLocked).
func (a *Agent) loadLock() error {
	file := a.path("lock.json")
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: read lock: %w", err)
	}
	var sl storedLock
	if err := json.Unmarshal(b, &sl); err != nil {
		return fmt.Errorf("agent: %s: %w", file, err)
	}
	var until time.Time
	if sl.Until != "" {
		if until, err = time.Parse(time.RFC3339Nano, sl.Until); err != nil {
			return fmt.Errorf("agent: %s: until: %w", file, err)
		}
	}
	a.lockOwner, a.lockUntil = sl.Owner, until
	if sl.Owner != "" {
		a.log.Info("locked since before the restart", zap.String("owner", sl.Owner), zap.String("until", sl.Until))
	}
	return nil
}

// Lock locks the agent for owner with a lease of ttl (0: no expiry),
// recorded in lock.json so that it survives a restart of the agent. A
// second lock fails (409) while the lease runs, also for the same owner
// (as Disnix's lock file), unless refresh is set and owner holds it: then
// the lease is extended. A coordinator that died mid-transition thus
// blocks the target for at most one lease.
//
// A new lock (not a renewal) runs the lock operation of every active
// Dysnomia module mapping; a module that refuses refuses the lock.
func (a *Agent) Lock(ctx context.Context, owner string, ttl time.Duration, refresh bool) error {
	if err := a.takeLock(owner, ttl, refresh); err != nil || refresh {
		return err
	}
	if err := a.lockModules(ctx); err != nil {
		a.releaseLock(owner) // the modules locked already were unlocked
		return fmt.Errorf("lock refused: %w", err)
	}
	return nil
}

func (a *Agent) takeLock(owner string, ttl time.Duration, refresh bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if owner == "" {
		owner = "anonymous"
	}
	held := a.lockHeldLocked()
	switch {
	case held && a.lockOwner != owner:
		return &httpError{409, fmt.Sprintf("locked by %s", a.lockOwner)}
	case held && !refresh:
		return &httpError{409, "locked already"}
	case !held && refresh:
		return &httpError{409, "not locked: the lease expired"}
	}
	var until time.Time
	if ttl > 0 {
		until = a.cfg.Clock.Now().Add(ttl)
	}
	if err := a.saveLock(owner, until); err != nil {
		return err
	}
	a.lockOwner, a.lockUntil = owner, until
	return nil
}

// Unlock releases the lock; it fails when not locked (or locked by
// someone else). The unlock operation of every active Dysnomia module
// mapping runs first (a failure is reported; the lock is released anyway).
func (a *Agent) Unlock(ctx context.Context, owner string) error {
	merr := a.unlockModules(ctx)
	if err := a.releaseLock(owner); err != nil {
		return err
	}
	return merr
}

func (a *Agent) releaseLock(owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if owner == "" {
		owner = "anonymous"
	}
	if !a.lockHeldLocked() {
		return &httpError{409, "not locked"}
	}
	if a.lockOwner != owner {
		return &httpError{409, fmt.Sprintf("locked by %s", a.lockOwner)}
	}
	if err := a.saveLock("", time.Time{}); err != nil {
		return err
	}
	a.lockOwner, a.lockUntil = "", time.Time{}
	a.notifyLocked()
	return nil
}

// Health reports the agent's health.
func (a *Agent) Health() agentapi.Health {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := agentapi.Health{Status: "ok", Draining: a.draining, Locked: a.lockHeldLocked(), Services: len(a.profile), Version: Version}
	if a.draining {
		h.Status = "draining"
	}
	for _, e := range a.profile {
		if e.proc != nil {
			if _, r, _ := e.proc.status(); r {
				h.Running++
			}
		}
	}
	return h
}

// DrainStatus reports the drain.
func (a *Agent) DrainStatus() agentapi.DrainStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := agentapi.DrainStatus{Draining: a.draining, Remaining: len(a.profile)}
	if !a.drainEnd.IsZero() {
		d.Deadline = a.drainEnd.UTC().Format(time.RFC3339)
	}
	return d
}

// Drain marks the agent as draining (visible in /v1/health and
// /v1/drain; new activations are refused) and waits until the coordinator
// has moved every service away (no service left and no transition lock
// held), timeout passes, or ctx ends. It then stops every process
// (Close(true)) and reports whether the services had been moved away. The
// caller withdraws the mDNS announcement first.
func (a *Agent) Drain(ctx context.Context, timeout time.Duration) (moved bool) {
	clk := a.cfg.Clock
	a.mu.Lock()
	a.draining = true
	a.drainEnd = clk.Now().Add(timeout)
	a.mu.Unlock()
	a.log.Info("draining", zap.Duration("timeout", timeout))
	deadline := clk.NewTimer(timeout)
	defer deadline.Stop()
	moved = a.waitMovedAway(ctx, deadline.C())
	a.Close(true)
	return moved
}

// waitMovedAway waits until no service is left and no lock is held, or
// until end fires or ctx ends; it reports whether the first happened.
func (a *Agent) waitMovedAway(ctx context.Context, end <-chan time.Time) bool {
	for {
		a.mu.Lock()
		n, locked, until, ch := len(a.profile), a.lockHeldLocked(), a.lockUntil, a.changed
		a.mu.Unlock()
		// Done when nothing runs here any more and the coordinator's
		// transition is over (it holds the lock until its state
		// migration from this machine has finished).
		if n == 0 && !locked {
			return true
		}
		var expiry clock.Timer // the held lease may run out
		var expired <-chan time.Time
		if locked && !until.IsZero() {
			expiry = a.cfg.Clock.NewTimer(until.Sub(a.cfg.Clock.Now()))
			expired = expiry.C()
		}
		select {
		case <-ch:
		case <-expired:
		case <-end:
			return false
		case <-ctx.Done():
			return false
		}
		if expiry != nil {
			expiry.Stop()
		}
	}
}

// Close stops supervising. With stopProcesses the processes are killed (a
// drained shutdown); without, they keep running and a restarted agent
// adopts them.
//
// Activations in flight are given up (their processes stopped) and waited
// for, so that no process the agent started outlives Close(true) nor is
// left unrecorded by Close(false).
func (a *Agent) Close(stopProcesses bool) {
	a.logOnce.Do(func() { close(a.stopLog) })
	a.mu.Lock()
	a.closing = true
	a.stopAll()
	var ps []*proc
	for _, e := range a.profile {
		if e.proc != nil {
			ps = append(ps, e.proc)
		}
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			if stopProcesses {
				p.stop()
			} else {
				p.detach()
			}
		}(p)
	}
	wg.Wait()
	a.pending.Wait()
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// keyLock serialises the activations and deactivations of one key:
// concurrent requests for one key start one process, never several.
type keyLock struct {
	ch    chan struct{} // holds a token while the key is locked
	users int           // requests holding or waiting for it (guarded by Agent.mu)
}

// lockKey waits until no other activation or deactivation of key runs (or
// ctx ends) and returns the function that releases the key.
func (a *Agent) lockKey(ctx context.Context, key string) (func(), error) {
	a.mu.Lock()
	if a.keys == nil {
		a.keys = map[string]*keyLock{}
	}
	l := a.keys[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		a.keys[key] = l
	}
	l.users++
	a.mu.Unlock()
	release := func() {
		a.mu.Lock()
		if l.users--; l.users == 0 {
			delete(a.keys, key)
		}
		a.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
