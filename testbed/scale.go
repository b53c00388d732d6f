package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/adapt"
)

// ScaleConfig configures RunScale.
type ScaleConfig struct {
	// Dir holds the run's files; what an earlier run left there is deleted
	// first, and the machines' state (the artifacts they received) at the
	// end.
	Dir string
	// BinDir holds the dydisnix commands and the example services.
	BinDir string
	// Machines is N, the number of machines (default 20); each gets ten
	// services of the scale system (ScaleServicesModel).
	Machines int
	// Idle is the idle window after the first deploy (default 2 minutes:
	// its first 30 s still carry the deploy's aftermath, the connections
	// it opened, closed after 30 s unused, and the memory it used, given
	// back to the system as they close).
	Idle time.Duration
	// SnapshotSchedule is the loop's --snapshot-schedule (default
	// ScaleSnapshotSchedule).
	SnapshotSchedule string
	// Progress receives a running story; nil discards it.
	Progress io.Writer
}

// Figure is one measured value with the host's 1-minute load average
// (/proc/loadavg) read when it was measured. Measured is false when the run
// failed before the figure could be taken.
type Figure struct {
	Value    float64 `json:"value"`
	Load     float64 `json:"load"`
	Measured bool    `json:"measured"`
}

// ScaleReport is what RunScale measured.
type ScaleReport struct {
	Machines int `json:"machines"`
	Services int `json:"services"`
	// FirstDeploy: from the start of the first deploy to every service
	// healthy (seconds).
	FirstDeploy Figure `json:"firstDeployS"`
	// Crash* are from the kill -9 of a machine to: the loop seeing the
	// change, the redeploy starting, every service healthy elsewhere
	// (seconds).
	CrashDetected Figure `json:"crashDetectedS"`
	CrashRedeploy Figure `json:"crashRedeployStartsS"`
	CrashHealthy  Figure `json:"crashHealthyS"`
	// LeaveHealthy is from a graceful stop of a machine to every service
	// healthy elsewhere (seconds).
	LeaveHealthy Figure `json:"leaveHealthyS"`
	// Idle window: the coordinator's CPU (% of a core) and RSS (MB), the
	// mean CPU of an agent (% of a core).
	CoordinatorCPU Figure `json:"coordinatorCpuPct"`
	CoordinatorRSS Figure `json:"coordinatorRssMB"`
	AgentCPU       Figure `json:"agentCpuPct"`
	// RcvbufErrors is Udp RcvbufErrors of /proc/net/snmp in the
	// coordinator's namespace at the end of the run (the namespace is made
	// for the run: the count starts at 0).
	RcvbufErrors Figure `json:"rcvbufErrors"`
	// Displaced is the number of services the crashed machine held;
	// MostOnOneSurvivor how many of them the busiest survivor took.
	Displaced         int    `json:"displaced"`
	MostOnOneSurvivor Figure `json:"mostDisplacedOnOneSurvivor"`
	// BusiestAfterCrash is the number of services on the busiest machine
	// once the crash is healed (a survivor that was empty, readmitted
	// after probation, rightly takes many displaced services: this says
	// whether any machine ends up holding more than its share).
	BusiestAfterCrash Figure `json:"busiestAfterCrash"`
	// SnapshotAge is the age of the newest complete snapshot at the end of
	// the idle window (seconds); SnapshotDuringIdle says whether one
	// completed inside the window.
	SnapshotAge        Figure `json:"newestSnapshotAgeS"`
	SnapshotDuringIdle bool   `json:"snapshotDuringIdle"`
	// LeftAfterDown lists the run's namespaces and service processes that
	// remained after down (none expected).
	LeftAfterDown []string `json:"leftAfterDown,omitempty"`
}

// scaleKinds are the ten services every machine adds to the scale system:
// a stateful key-value store, a web front on it, four connectsTo pairs.
var scaleKinds = []demoService{
	{"kvstore", "kvstore", 0, nil, nil, true},
	{"webfront", "webfront", 1, []string{"kvstore"}, nil, false},
	{"peerA1", "peer", 2, nil, []string{"peerB1"}, false},
	{"peerB1", "peer", 3, nil, []string{"peerA1"}, false},
	{"peerA2", "peer", 4, nil, []string{"peerB2"}, false},
	{"peerB2", "peer", 5, nil, []string{"peerA2"}, false},
	{"peerA3", "peer", 6, nil, []string{"peerB3"}, false},
	{"peerB3", "peer", 7, nil, []string{"peerA3"}, false},
	{"peerA4", "peer", 8, nil, []string{"peerB4"}, false},
	{"peerB4", "peer", 9, nil, []string{"peerA4"}, false},
}

// ScaleServicesModel is the scale system for n machines: ten services per
// machine (scaleKinds, named KIND-I for I = 1..n, each group wired within
// itself), every service on a port of its own from 10000 on, so that any
// number of them share a machine.
func ScaleServicesModel(binDir string, n int) map[string]any {
	var list []demoService
	for i := 1; i <= n; i++ {
		suffix := "-" + strconv.Itoa(i)
		for _, k := range scaleKinds {
			s := k
			s.name += suffix
			s.port = 10000 + (i-1)*len(scaleKinds) + k.port
			s.dependsOn = suffixed(k.dependsOn, suffix)
			s.connectsTo = suffixed(k.connectsTo, suffix)
			list = append(list, s)
		}
	}
	m := servicesModel(binDir, list)
	for _, s := range list {
		if s.bin == "peer" {
			m[s.name].(map[string]any)["interval"] = ScalePeerInterval.String()
		}
	}
	return m
}

// ScaleSnapshotSchedule is the loop's snapshot schedule in the scale run:
// the shipped default is every minute, the other testbed tests snapshot
// every 2 s; every 10 s puts a few complete snapshots of every stateful
// service inside the idle window, and the idle figures include them.
const ScaleSnapshotSchedule = "@every 10s"

// ScalePeerInterval is how often a peer of the scale system pings its
// partner (the demo's peers: every second). 800 peers pinging every second
// at N = 100 are 800 HTTP requests a second, which take most of a 2-core
// host before the coordinator or an agent does anything; the scenario
// measures the deployment system, not that traffic.
const ScalePeerInterval = 10 * time.Second

func suffixed(names []string, suffix string) []string {
	if names == nil {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + suffix
	}
	return out
}

// loadavg returns the host's 1-minute load average.
func loadavg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func fig(v float64) Figure { return Figure{Value: v, Load: loadavg(), Measured: true} }

// rcvbufErrors reads Udp RcvbufErrors of /proc/net/snmp inside a host's
// namespace.
func rcvbufErrors(h *Host) (int, error) {
	out, err := h.Command("cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0, fmt.Errorf("read /proc/net/snmp in %s: %w", h.Netns, err)
	}
	var head []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, name := range head {
			if name == "RcvbufErrors" && i < len(f) {
				return strconv.Atoi(f[i])
			}
		}
	}
	return 0, fmt.Errorf("no Udp RcvbufErrors in /proc/net/snmp of %s", h.Netns)
}

// scaleRun is one RunScale.
type scaleRun struct {
	cfg    ScaleConfig
	h      *Harness
	report ScaleReport
}

// settleTimeout bounds every wait of the scale run: generous, and
// proportional to N (at N = 100 on a loaded 2-core host the first deploy's
// 1500 steps take minutes).
func (r *scaleRun) settleTimeout() time.Duration {
	return 2*time.Minute + time.Duration(r.cfg.Machines)*10*time.Second
}

// RunScale runs the scale scenario: N machines with ten services each
// under the demo's policy and the shipped defaults, the loop in the
// coordinator's namespace, the first deploy, an idle window, the kill -9
// of one machine, the graceful stop of another, and down. It measures the
// figures of ScaleReport. The report is returned with what was measured
// even when a step fails.
func RunScale(ctx context.Context, cfg ScaleConfig) (*ScaleReport, error) {
	if cfg.Machines == 0 {
		cfg.Machines = 20
	}
	if cfg.Machines < 3 {
		return nil, fmt.Errorf("bench-scale needs at least 3 machines (one crashes, one leaves), got %d", cfg.Machines)
	}
	if cfg.Idle == 0 {
		cfg.Idle = 2 * time.Minute
	}
	if cfg.SnapshotSchedule == "" {
		cfg.SnapshotSchedule = ScaleSnapshotSchedule
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("delete the earlier run's files: %w", err)
	}
	svcs := ScaleServicesModel(cfg.BinDir, cfg.Machines)
	r := &scaleRun{cfg: cfg, report: ScaleReport{Machines: cfg.Machines, Services: len(svcs)}}
	h, err := NewHarness(HarnessConfig{Dir: cfg.Dir, BinDir: cfg.BinDir, Machines: cfg.Machines, Services: svcs, Progress: cfg.Progress})
	if err != nil {
		return nil, err
	}
	r.h = h
	err = r.run(ctx)
	r.down()
	return &r.report, err
}

func (r *scaleRun) run(ctx context.Context) error {
	h, n := r.h, r.cfg.Machines
	h.Say("%d machines started, %d services to place", n, r.report.Services)
	if err := h.StartLoop("--snapshot-schedule", r.cfg.SnapshotSchedule); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.settleTimeout())
	defer cancel()
	if err := h.WaitStatus(wctx); err != nil {
		return fmt.Errorf("the loop's status page: %w", err)
	}
	// The first deploy: its start as the loop reports it, until every
	// service answers its health check (each checked as soon as the loop
	// logs its activation done, and all again after that moment).
	early, err := h.watchActivations(ctx, h.ServicePorts())
	if err != nil {
		return fmt.Errorf("the loop's log: %w", err)
	}
	var firstStart time.Time
	st, at, err := h.settle(ctx, 0, nil, nil, r.settleTimeout(), func(st *Status) {
		if firstStart.IsZero() && st.LastDeploy != nil && st.LastDeploy.Seq == 1 {
			firstStart = st.LastDeploy.Started
		}
	}, early)
	early.stop()
	if err != nil {
		return fmt.Errorf("first deploy: %w", err)
	}
	if firstStart.IsZero() {
		firstStart = st.LastDeploy.Started // deploy 1 ended between two polls
	}
	r.report.FirstDeploy = fig(at.Sub(firstStart).Seconds())
	h.Say("first deploy: every service healthy %.2f s after the deploy started (deploy #%d)", r.report.FirstDeploy.Value, st.Seq())

	// Machines whose probes failed under the first deploy's load come back
	// through probation, and their admission is a deploy: the idle window
	// starts once none is pending.
	if st, err = h.quiet(ctx, r.settleTimeout()); err != nil {
		return err
	}
	if err := r.idle(st.Seq()); err != nil {
		return err
	}
	st, err = h.Status()
	if err != nil {
		return err
	}
	if err := r.crash(ctx, st); err != nil {
		return err
	}
	return r.leave(ctx)
}

// quiet waits until the loop is idle with every machine it knows up or
// down (none on probation or leaving) and every one that is up in use,
// and returns that status summary.
func (h *Harness) quiet(ctx context.Context, timeout time.Duration) (*Status, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		st, err := h.statusSummary()
		switch {
		case err != nil:
			last = err.Error()
		case st.Phase != "idle":
			last = "phase " + st.Phase
		case st.Summary.Targets[adapt.MemberProbation]+st.Summary.Targets[adapt.MemberLeaving] > 0:
			last = fmt.Sprintf("machines on probation or leaving: %v", st.Summary.Targets)
		case st.Summary.Targets[adapt.MemberUp] != st.Summary.InUse:
			// A machine just admitted, its deploy not started yet.
			last = fmt.Sprintf("%d machines up, %d in use", st.Summary.Targets[adapt.MemberUp], st.Summary.InUse)
		default:
			return st, nil
		}
		if err := h.pause(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("the loop did not become quiet within %s: %s", timeout, last)
}

// pause waits d, unless ctx ends or the loop exits first (an error).
func (h *Harness) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.loopExited():
		return fmt.Errorf("dydisnix-self-adapt is not running; its log ends:\n%s", h.LoopLog(15))
	case <-time.After(d):
		return nil
	}
}

// idle measures the idle window: CPU and RSS of the coordinator, mean CPU
// of the agents, whether a snapshot completed.
func (r *scaleRun) idle(seq int) error {
	h := r.h
	h.mu.Lock()
	coordPid := h.loop.Process.Pid
	h.mu.Unlock()
	var agents []int
	for _, m := range h.TB.Machines() {
		if m.cmd != nil && m.Running() {
			agents = append(agents, m.cmd.Process.Pid)
		}
	}
	cpu := func() (int64, int64, error) {
		c, err := procCPU(coordPid)
		if err != nil {
			return 0, 0, err
		}
		var a int64
		for _, pid := range agents {
			v, err := procCPU(pid)
			if err != nil {
				return 0, 0, err
			}
			a += v
		}
		return c, a, nil
	}
	h.Say("idle window of %s", r.cfg.Idle)
	start := time.Now()
	c0, a0, err := cpu()
	if err != nil {
		return err
	}
	time.Sleep(r.cfg.Idle) // the window itself is what is measured
	c1, a1, err := cpu()
	if err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	hz := clockTicks()
	r.report.CoordinatorCPU = fig(100 * float64(c1-c0) / hz / el)
	r.report.AgentCPU = fig(100 * float64(a1-a0) / hz / el / float64(len(agents)))
	rss, err := procRSS(coordPid)
	if err != nil {
		return err
	}
	r.report.CoordinatorRSS = fig(rss)
	st, err := h.Status()
	if err != nil {
		return err
	}
	if st.Seq() != seq {
		h.Say("the window was not idle: deploys #%d..#%d happened", seq+1, st.Seq())
	}
	if !st.LastSnapshot.IsZero() {
		r.report.SnapshotAge = fig(time.Since(st.LastSnapshot).Seconds())
		r.report.SnapshotDuringIdle = st.LastSnapshot.After(start)
	} else {
		r.report.SnapshotAge = fig(-1)
	}
	h.Say("idle: coordinator %.2f %% CPU, %.1f MB; agent %.3f %% CPU; newest snapshot %.1f s old",
		r.report.CoordinatorCPU.Value, r.report.CoordinatorRSS.Value, r.report.AgentCPU.Value, r.report.SnapshotAge.Value)
	return nil
}

// victim picks the machine that hosts the most services (ties: the first
// name), so the crash displaces as much as it can.
func victim(st *Status, machines []*Machine, avoid map[string]bool) string {
	count := map[string]int{}
	for s := range st.Distribution {
		count[st.TargetOf(s)]++
	}
	best := ""
	for _, m := range machines {
		if !avoid[m.Name] && m.Running() && (best == "" || count[m.Name] > count[best]) {
			best = m.Name
		}
	}
	return best
}

// crash kills a machine (kill -9) and measures the reaction.
func (r *scaleRun) crash(ctx context.Context, before *Status) error {
	h := r.h
	name := victim(before, h.TB.Machines(), nil)
	var displaced []string
	for s := range before.Distribution {
		if before.TargetOf(s) == name {
			displaced = append(displaced, s)
		}
	}
	r.report.Displaced = len(displaced)
	h.Say("crash (kill -9) of %s, which runs %d services", name, len(displaced))
	t0 := time.Now()
	if err := h.TB.Crash(name); err != nil {
		return err
	}
	var detected, started time.Time
	st, at, err := h.settle(ctx, before.Seq(), before, map[string]bool{name: true}, r.settleTimeout(), func(st *Status) {
		if d := st.LastDeploy; d != nil && d.Seq > before.Seq() && detected.IsZero() {
			detected, started = d.ChangeAt, d.Started
			r.report.CrashDetected = fig(detected.Sub(t0).Seconds())
			r.report.CrashRedeploy = fig(started.Sub(t0).Seconds())
		}
	}, nil)
	if err != nil {
		return fmt.Errorf("after the crash of %s: %w", name, err)
	}
	r.report.CrashHealthy = fig(at.Sub(t0).Seconds())
	took := map[string]int{}
	most := 0
	for _, s := range displaced {
		t := st.TargetOf(s)
		took[t]++
		most = max(most, took[t])
	}
	r.report.MostOnOneSurvivor = fig(float64(most))
	load := map[string]int{}
	busiest := 0
	for svc := range st.Distribution {
		t := st.TargetOf(svc)
		load[t]++
		busiest = max(busiest, load[t])
	}
	r.report.BusiestAfterCrash = fig(float64(busiest))
	h.Say("crash: detected after %.2f s, redeploy started after %.2f s, all healthy after %.2f s; displaced services went to %d survivors, at most %d on one",
		r.report.CrashDetected.Value, r.report.CrashRedeploy.Value, r.report.CrashHealthy.Value, len(took), most)
	return nil
}

// leave stops another machine gracefully and measures the reaction.
func (r *scaleRun) leave(ctx context.Context) error {
	h := r.h
	before, err := h.Status()
	if err != nil {
		return err
	}
	gone := map[string]bool{}
	for _, m := range h.TB.Machines() {
		if !m.Running() {
			gone[m.Name] = true
		}
	}
	name := victim(before, h.TB.Machines(), gone)
	gone[name] = true
	h.Say("graceful stop of %s", name)
	t0 := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- h.TB.Stop(name) }()
	_, at, err := h.settle(ctx, before.Seq(), before, gone, r.settleTimeout(), nil, nil)
	if err != nil {
		return fmt.Errorf("after the graceful stop of %s: %w", name, err)
	}
	r.report.LeaveHealthy = fig(at.Sub(t0).Seconds())
	h.Say("graceful leave: all healthy after %.2f s", r.report.LeaveHealthy.Value)
	return <-stopped
}

// down closes the testbed and lists what remains of it.
func (r *scaleRun) down() {
	h := r.h
	var netns, states []string
	for _, m := range h.TB.Machines() {
		netns = append(netns, m.Host.Netns)
		states = append(states, m.StateDir)
	}
	netns = append(netns, h.TB.Coordinator().Netns)
	if drops, err := rcvbufErrors(h.TB.Coordinator()); err == nil {
		r.report.RcvbufErrors = fig(float64(drops))
	} else {
		h.Say("%v", err)
	}
	h.Close()
	out, _ := exec.Command("ip", "netns", "list").Output()
	present := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			present[f[0]] = true
		}
	}
	for _, ns := range netns {
		if present[ns] {
			r.report.LeftAfterDown = append(r.report.LeftAfterDown, "namespace "+ns)
		}
	}
	r.report.LeftAfterDown = append(r.report.LeftAfterDown, serviceProcessesUnder(r.cfg.Dir)...)
	// The machines' state holds every artifact they received (about 2 GB
	// at N = 100: runs in several directories filled the disk); the run
	// keeps its logs, the loop's and the agents'.
	var errs []error
	for _, dir := range states {
		errs = append(errs, os.RemoveAll(dir))
	}
	if err := errors.Join(errs...); err != nil {
		h.Say("delete the machines' state: %v", err)
	}
}

// serviceProcessesUnder lists the processes whose executable or working
// directory lies under dir, or that carry a DYDISNIX_SERVICE of a run in
// dir: what a down must not leave.
func serviceProcessesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err == nil && strings.HasPrefix(cwd, dir+"/") {
			out = append(out, fmt.Sprintf("process %d (%s) in %s", pid, procName(pid), cwd))
		}
	}
	return out
}

// settle waits until a deploy after afterSeq has succeeded, the loop is
// idle, no service is placed on a machine in avoid, and every service has
// answered its health check where it is placed; it returns the last
// status and when the last health check needed came back. seen, when
// set, sees every status polled.
//
// A service that answered is not asked again while the loop reports the
// same deploy and the service the same machine: at N = 100, asking all
// 1000 services on every poll took seconds on a loaded host, and those
// seconds were counted as the reaction's. A later deploy asks them all
// again (a front end's health depends on its store, which may have moved).
//
// With before (the status of a settled system before a crash or a leave),
// the time returned is when the services the reaction touched answered:
// those placed elsewhere than in before, and those that depend on or
// connect to one of them (transitively). Every other service must answer
// too, in a round right after, before settle returns: untouched, they are
// not what the reaction's time measures.
//
// With early (the first deploy), the services it saw answer on the
// machine they are placed on count as answered, and every service must
// answer again in a round right after, as with before.
func (h *Harness) settle(ctx context.Context, afterSeq int, before *Status, avoid map[string]bool, timeout time.Duration, seen func(*Status), early *activationWatch) (*Status, time.Time, error) {
	deadline := time.Now().Add(timeout)
	ports := h.ServicePorts()
	answered, answeredSeq := map[string]string{}, 0
	var last string
	for time.Now().Before(deadline) {
		if err := h.pause(ctx, 50*time.Millisecond); err != nil {
			return nil, time.Time{}, err
		}
		// The summary until a deploy has ended, then the distribution:
		// the whole status 20 times a second loaded the coordinator
		// whose reaction is measured.
		st, err := h.statusSummary()
		if err != nil {
			last = err.Error()
			continue
		}
		if seen != nil {
			seen(st)
		}
		switch {
		case st.Seq() <= afterSeq || st.Phase != "idle":
			last = fmt.Sprintf("phase %s, waiting for a deploy after #%d", st.Phase, afterSeq)
			continue
		case st.LastDeploy.Result != "success":
			last = "last deploy failed: " + st.LastDeploy.Error
			continue
		}
		if st, err = h.statusServices(); err != nil {
			last = err.Error()
			continue
		}
		if st.Seq() <= afterSeq || st.Phase != "idle" || st.LastDeploy.Result != "success" {
			continue // a deploy started in between
		}
		if st.Seq() != answeredSeq {
			clear(answered)
			answeredSeq = st.Seq()
			if before != nil {
				maps.Copy(answered, h.untouched(before, st))
			}
		}
		if early != nil {
			maps.Copy(answered, early.confirmed(st))
		}
		if err := h.allHealthy(st, ports, avoid, answered); err != nil {
			last = err.Error()
			continue
		}
		at := time.Now()
		if before != nil || early != nil {
			if err := h.allHealthy(st, ports, avoid, nil); err != nil {
				last = err.Error()
				answeredSeq = 0 // start over
				continue
			}
		}
		return st, at, nil
	}
	return nil, time.Time{}, fmt.Errorf("the system did not settle within %s: %s\ncoordinator log:\n%s", timeout, last, h.LoopLog(10))
}

// untouched returns service → machine for the services placed in st as in
// before that neither depend on nor connect to (transitively) a service
// placed differently.
func (h *Harness) untouched(before, st *Status) map[string]string {
	edges := map[string][]string{} // service → the services it uses
	for name, v := range h.cfg.Services {
		m, _ := v.(map[string]any)
		for _, k := range []string{"dependsOn", "connectsTo"} {
			list, _ := m[k].([]any)
			for _, d := range list {
				if d, ok := d.(string); ok {
					edges[name] = append(edges[name], d)
				}
			}
		}
	}
	touched := map[string]bool{}
	for name := range h.cfg.Services {
		if t := st.TargetOf(name); t == "" || t != before.TargetOf(name) {
			touched[name] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for name, uses := range edges {
			if touched[name] {
				continue
			}
			for _, d := range uses {
				if touched[d] {
					touched[name], changed = true, true
					break
				}
			}
		}
	}
	out := map[string]string{}
	for name := range h.cfg.Services {
		if !touched[name] {
			out[name] = st.TargetOf(name)
		}
	}
	return out
}

// allHealthy checks every service's placement and health check, 32 at a
// time, except those answered lists as having answered on the machine they
// are placed on; it adds those that answer now to answered (when not nil),
// and returns the first problem in service-name order.
func (h *Harness) allHealthy(st *Status, ports map[string]int, avoid map[string]bool, answered map[string]string) error {
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, name := range names {
		t := st.TargetOf(name)
		if t == "" || avoid[t] {
			errs[i] = fmt.Errorf("%s is placed on %q", name, t)
			continue
		}
		mu.Lock()
		done := answered[name] == t
		mu.Unlock()
		if done {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// Over kept-alive connections: repeated checks of many services
			// do not each pay a new connection from the coordinator's
			// namespace.
			if err := h.healthyWith(h.keptAlive(), t, ports[name]); err != nil {
				errs[i] = fmt.Errorf("%s on %s: %w", name, t, err)
				return
			}
			if answered != nil {
				mu.Lock()
				answered[name] = t
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// keptAlive is the client of the harness's repeated requests from the
// coordinator's namespace: connections kept alive, one per host and port.
func (h *Harness) keptAlive() *http.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checker == nil {
		h.checker = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: h.cfg.Coordinator.DialContext, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	}
	return h.checker
}

// WriteTable prints the report as the table of the scale issue: each figure
// with the 1-minute load average of the host when it was measured.
func (r *ScaleReport) WriteTable(w io.Writer) {
	f := func(x Figure, format string) string {
		if !x.Measured {
			return "not measured"
		}
		return fmt.Sprintf(format+" (load %.2f)", x.Value, x.Load)
	}
	fmt.Fprintf(w, "| N | crash → detected | crash → redeploy starts | crash → all healthy | first deploy (%d services) |\n", r.Services)
	fmt.Fprintln(w, "|---|---|---|---|---|")
	fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n\n", r.Machines,
		f(r.CrashDetected, "%.2f s"), f(r.CrashRedeploy, "%.2f s"), f(r.CrashHealthy, "%.2f s"), f(r.FirstDeploy, "%.1f s"))
	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|---|")
	for _, row := range []struct{ name, value string }{
		{"graceful leave → all healthy", f(r.LeaveHealthy, "%.2f s")},
		{"idle coordinator CPU", f(r.CoordinatorCPU, "%.2f %% of a core")},
		{"idle coordinator RSS", f(r.CoordinatorRSS, "%.1f MB")},
		{"coordinator UDP receive-buffer drops (whole run)", f(r.RcvbufErrors, "%.0f")},
		{"idle CPU per agent (mean)", f(r.AgentCPU, "%.3f %% of a core")},
		{fmt.Sprintf("most displaced services on one survivor (of %d)", r.Displaced), f(r.MostOnOneSurvivor, "%.0f")},
		{fmt.Sprintf("services on the busiest machine after the crash (%d in all)", r.Services), f(r.BusiestAfterCrash, "%.0f")},
		{"newest snapshot age (end of idle window)", f(r.SnapshotAge, "%.1f s")},
		{"a snapshot completed in the idle window", yesNo(r.SnapshotAge.Measured, r.SnapshotDuringIdle)},
		{"left after down", leftText(r.LeftAfterDown)},
	} {
		fmt.Fprintf(w, "| %s | %s |\n", row.name, row.value)
	}
}

func yesNo(measured, v bool) string {
	if !measured {
		return "not measured"
	}
	return strconv.FormatBool(v)
}

func leftText(left []string) string {
	if len(left) == 0 {
		return "nothing"
	}
	return strings.Join(left, "; ")
}

// errNoBinaries is returned when BinDir lacks the commands.
var errNoBinaries = errors.New("bench-scale: dydisnix-agent and dydisnix-self-adapt not found in the binary directory (make build first)")

// CheckBinaries reports whether binDir holds what RunScale starts.
func CheckBinaries(binDir string) error {
	for _, name := range []string{"dydisnix-agent", "dydisnix-self-adapt", "examples/kvstore", "examples/webfront", "examples/peer"} {
		if _, err := os.Stat(binDir + "/" + name); err != nil {
			return fmt.Errorf("%w: %s", errNoBinaries, name)
		}
	}
	return nil
}
