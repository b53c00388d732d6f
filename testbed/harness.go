package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/adapt"
)

// HarnessConfig configures a Harness.
type HarnessConfig struct {
	// Dir holds models, coordinator state and logs.
	Dir string
	// BinDir holds the dydisnix commands and the example services.
	BinDir string
	// Machines is the number of machines started (default 4).
	Machines int
	// Services is the services model (JSON form); default the example system.
	Services map[string]any
	// Policy is the QoS policy (YAML); default DemoPolicy.
	Policy string
	// ServicesFile, PolicyFile and AugmentFile, when set, are model files
	// the loop reads instead of the Services and Policy written into Dir
	// (AugmentFile: its -a; none by default).
	ServicesFile, PolicyFile, AugmentFile string
	// LoopArgs are extra flags of dydisnix-self-adapt.
	LoopArgs []string
	// Progress receives a running story; nil discards it.
	Progress io.Writer
	// DrainTimeout bounds a machine's graceful stop (default 30 s).
	DrainTimeout time.Duration
	// Coordinator is the namespace the loop runs in: the testbed's
	// coordinator by default, or one of Testbed.AddCoordinator for a
	// second coordinator (several coordinators elect a leader; they need
	// LoopArgs with --registry). Each harness keeps its state, logs and
	// models in its own Dir.
	Coordinator *Host
	// Etcd is the number of etcd members (0: none; see Config.Etcd); the
	// loop then reads the registry as well as mDNS.
	Etcd int
	// Far is the number of machines (remote1, …) started on the far
	// subnet behind the router (see Config.FarSubnet).
	Far int
	// Containers and MySQLAccounts: see Config.
	Containers    []string
	MySQLAccounts []string
}

// Harness is a testbed with the self-adaptive loop running as a real
// dydisnix-self-adapt process in the coordinator's namespace. The demo and
// the end-to-end tests drive it.
type Harness struct {
	TB  *Testbed
	cfg HarnessConfig
	out io.Writer

	client    *http.Client
	statusURL string // .../status, without a query

	mu       sync.Mutex
	loop     *exec.Cmd
	loopDone chan struct{}
	checker  *http.Client // keptAlive
}

// Status is the part of the coordinator's /status the harness reads.
type Status struct {
	Phase   string `json:"phase"`
	Summary struct {
		Targets map[adapt.MemberState]int `json:"targets"`
		InUse   int                       `json:"inUse"`
	} `json:"summary"`
	Leader       *adapt.Leader    `json:"leader"`
	Distribution map[string][]any `json:"distribution"`
	Discovered   []string         `json:"discovered"`
	LastSnapshot time.Time        `json:"lastSnapshot"`
	LastDeploy   *struct {
		Seq      int       `json:"seq"`
		Result   string    `json:"result"`
		Error    string    `json:"error"`
		Causes   []string  `json:"causes"`
		ChangeAt time.Time `json:"changeAt"`
		Started  time.Time `json:"started"`
		Finished time.Time `json:"finished"`
		Moved    []string  `json:"moved"`
	} `json:"lastDeploy"`
}

// Seq is the number of the last deploy, 0 when none.
func (s *Status) Seq() int {
	if s == nil || s.LastDeploy == nil {
		return 0
	}
	return s.LastDeploy.Seq
}

// TargetOf returns the first target of a service.
func (s *Status) TargetOf(svc string) string {
	for _, m := range s.Distribution[svc] {
		switch x := m.(type) {
		case string:
			return x
		case map[string]any:
			if t, ok := x["target"].(string); ok {
				return t
			}
		}
	}
	return ""
}

// NewHarness starts the machines (not yet the loop: StartLoop).
func NewHarness(cfg HarnessConfig) (*Harness, error) {
	if cfg.Machines == 0 {
		cfg.Machines = 4
	}
	if cfg.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("harness: locate binaries: %w", err)
		}
		cfg.BinDir = filepath.Dir(exe)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	tcfg := Config{Dir: filepath.Join(cfg.Dir, "testbed"), BinDir: cfg.BinDir, DrainTimeout: cfg.DrainTimeout, Etcd: cfg.Etcd,
		Containers: cfg.Containers, MySQLAccounts: cfg.MySQLAccounts}
	if cfg.Far > 0 {
		tcfg.FarSubnet = DefaultFarSubnet
	}
	tb, err := New(tcfg)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Machines; i++ {
		if _, err := tb.Add(fmt.Sprintf("machine%d", i), nil); err != nil {
			tb.Close()
			return nil, err
		}
	}
	for i := 1; i <= cfg.Far; i++ {
		if _, err := tb.AddFar(fmt.Sprintf("remote%d", i), nil); err != nil {
			tb.Close()
			return nil, err
		}
	}
	h, err := AttachHarness(tb, cfg)
	if err != nil {
		tb.Close()
		return nil, err
	}
	return h, nil
}

// AttachHarness puts a harness around a running testbed: it writes the
// models into cfg.Dir (those not given as files) for the loop StartLoop
// starts in the testbed's coordinator namespace. cfg.Machines and
// cfg.DrainTimeout are not used; Close closes tb.
func AttachHarness(tb *Testbed, cfg HarnessConfig) (*Harness, error) {
	if cfg.BinDir == "" {
		cfg.BinDir = tb.cfg.BinDir
	}
	if cfg.Services == nil {
		cfg.Services = DemoServicesModel(cfg.BinDir)
	}
	if cfg.Policy == "" {
		cfg.Policy = DemoPolicy
	}
	h := &Harness{TB: tb, cfg: cfg, out: cfg.Progress}
	if h.out == nil {
		h.out = io.Discard
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	if cfg.Coordinator == nil {
		cfg.Coordinator = tb.Coordinator()
	}
	h.cfg.Coordinator = cfg.Coordinator
	h.client = cfg.Coordinator.HTTPClient(5 * time.Second)
	if cfg.ServicesFile == "" {
		if err := h.WriteServices(cfg.Services); err != nil {
			return nil, err
		}
	}
	if cfg.PolicyFile == "" {
		if err := os.WriteFile(h.Path("qos.yaml"), []byte(cfg.Policy), 0o644); err != nil {
			return nil, fmt.Errorf("harness: %w", err)
		}
	}
	return h, nil
}

// Path returns a file in the harness directory.
func (h *Harness) Path(name string) string { return filepath.Join(h.cfg.Dir, name) }

// Say prints a line of the story.
func (h *Harness) Say(format string, args ...any) {
	fmt.Fprintf(h.out, "[%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// WriteServices (re)writes the services model atomically, as an operator
// editing it would; the loop notices through fsnotify.
func (h *Harness) WriteServices(svcs map[string]any) error {
	data, err := json.MarshalIndent(svcs, "", "  ")
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	tmp := h.Path(".services.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	return os.Rename(tmp, h.Path("services.json"))
}

// loopSnapshotSchedule is the --snapshot-schedule of the loop StartLoop
// starts.
const loopSnapshotSchedule = "@every 2s"

// StartLoop starts dydisnix-self-adapt in the coordinator's namespace.
func (h *Harness) StartLoop(extra ...string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loop != nil {
		return fmt.Errorf("the loop runs already")
	}
	coord := h.cfg.Coordinator
	statusAddr := h.StatusAddr()
	h.statusURL = "http://" + statusAddr + "/status"
	logf, err := os.OpenFile(h.Path("self-adapt.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	services, policy := h.cfg.ServicesFile, h.cfg.PolicyFile
	if services == "" {
		services = h.Path("services.json")
	}
	if policy == "" {
		policy = h.Path("qos.yaml")
	}
	args := []string{
		"-s", services,
		"-q", policy,
		"--deployer", "agent",
		"--agent-token-file", h.TB.TokenFile(),
		"--state-dir", h.Path("coordinator"),
		"--status-listen", statusAddr,
		"--mdns-interface", coord.Iface,
		"--snapshot",
		"--snapshot-schedule", loopSnapshotSchedule,
		"--log-format", "json",
	}
	if h.cfg.AugmentFile != "" {
		args = append(args, "-a", h.cfg.AugmentFile)
	}
	args = append(args, h.TB.CoordinatorArgs()...)
	args = append(args, h.TB.RegistryArgs()...)
	args = append(args, h.cfg.LoopArgs...)
	args = append(args, extra...)
	cmd := coord.Command(filepath.Join(h.cfg.BinDir, "dydisnix-self-adapt"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start dydisnix-self-adapt: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	h.loop, h.loopDone = cmd, done
	return nil
}

// StatusAddr is host:port of the loop's status server inside the
// coordinator's namespace.
func (h *Harness) StatusAddr() string {
	return fmt.Sprintf("%s:9200", h.cfg.Coordinator.Addr)
}

// WaitStatus waits until the loop's status server answers, the loop exits
// (an error with the end of its log) or ctx is done.
func (h *Harness) WaitStatus(ctx context.Context) error {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		if _, err := h.Status(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.loopExited():
			return fmt.Errorf("dydisnix-self-adapt exited; its log ends:\n%s", h.LoopLog(15))
		case <-poll.C:
		}
	}
}

// StopLoop stops the coordinator gracefully (SIGTERM).
func (h *Harness) StopLoop() { h.endLoop(syscall.SIGTERM) }

// KillLoop kills the coordinator (SIGKILL), wherever it is.
func (h *Harness) KillLoop() { h.endLoop(syscall.SIGKILL) }

func (h *Harness) endLoop(sig syscall.Signal) {
	h.mu.Lock()
	cmd, done := h.loop, h.loopDone
	h.loop = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Close stops the loop and the testbed.
func (h *Harness) Close() error {
	h.StopLoop()
	h.mu.Lock()
	if h.checker != nil {
		h.checker.CloseIdleConnections()
	}
	h.mu.Unlock()
	return h.TB.Close()
}

// LoopLog returns the last lines of the coordinator's log.
func (h *Harness) LoopLog(n int) string {
	data, _ := os.ReadFile(h.Path("self-adapt.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Status fetches the coordinator's /status with the detail of its
// targets and services.
func (h *Harness) Status() (*Status, error) {
	return h.statusWith(h.client, h.statusURL+"?detail=targets,services")
}

// statusSummary fetches the summary of /status (no detail: the phase and
// the last deploy without its plan and distribution), cheap to poll often.
// It goes over a kept-alive connection: polled often from a loaded host,
// a new connection from the coordinator's namespace per request took
// longer than the answer.
func (h *Harness) statusSummary() (*Status, error) { return h.statusWith(h.keptAlive(), h.statusURL) }

// statusServices fetches /status with the services' detail only (the
// distribution), not the targets', over a kept-alive connection.
func (h *Harness) statusServices() (*Status, error) {
	return h.statusWith(h.keptAlive(), h.statusURL+"?detail=services")
}

func (h *Harness) statusWith(c *http.Client, url string) (*Status, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decode /status: %w", err)
	}
	return &st, nil
}

func (h *Harness) loopExited() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loopDone == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return h.loopDone
}

// ServicePorts returns service → port of the services model.
func (h *Harness) ServicePorts() map[string]int {
	out := map[string]int{}
	for name, v := range h.cfg.Services {
		m, _ := v.(map[string]any)
		switch p := m["port"].(type) {
		case int:
			out[name] = p
		case float64:
			out[name] = int(p)
		case json.Number:
			n, _ := strconv.Atoi(string(p))
			out[name] = n
		}
	}
	return out
}

// SetServicesModel replaces the model the harness checks health against
// (after WriteServices).
func (h *Harness) SetServicesModel(svcs map[string]any) { h.cfg.Services = svcs }

// Settled waits until the coordinator has deployed successfully after
// deploy afterSeq, placed every service off the machine avoid ("" for
// none), and every service answers its health check. It returns the status
// and when that was first seen.
func (h *Harness) Settled(ctx context.Context, afterSeq int, avoid string, timeout time.Duration) (*Status, time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	ports := h.ServicePorts()
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		case <-h.loopExited():
			return nil, time.Time{}, fmt.Errorf("dydisnix-self-adapt is not running; its log ends:\n%s", h.LoopLog(15))
		case <-time.After(100 * time.Millisecond):
		}
		st, err := h.Status()
		if err != nil {
			last = err.Error()
			continue
		}
		if st.Seq() <= afterSeq || st.Phase != "idle" {
			last = fmt.Sprintf("phase %s, waiting for a deploy after #%d", st.Phase, afterSeq)
			continue
		}
		if st.LastDeploy.Result != "success" {
			last = "last deploy failed: " + st.LastDeploy.Error
			continue
		}
		ok := true
		for _, name := range names {
			t := st.TargetOf(name)
			if t == "" || t == avoid {
				ok, last = false, fmt.Sprintf("%s is placed on %q", name, t)
				break
			}
			if err := h.Healthy(t, ports[name]); err != nil {
				ok, last = false, fmt.Sprintf("%s on %s: %v", name, t, err)
				break
			}
		}
		if ok {
			return st, time.Now(), nil
		}
	}
	return nil, time.Time{}, fmt.Errorf("the system did not settle within %s: %s\ncoordinator log:\n%s", timeout, last, h.LoopLog(10))
}

// Addr returns host:port of a port on a machine.
func (h *Harness) Addr(target string, port int) (string, error) {
	m, ok := h.TB.Machine(target)
	if !ok {
		return "", fmt.Errorf("unknown machine %s", target)
	}
	return fmt.Sprintf("%s:%d", m.Host.Addr, port), nil
}

// Get does an HTTP GET from the coordinator's namespace.
func (h *Harness) Get(target string, port int, path string) (int, string, error) {
	return h.Do(http.MethodGet, target, port, path, "")
}

// Do sends an HTTP request from the coordinator's namespace.
func (h *Harness) Do(method, target string, port int, path, body string) (int, string, error) {
	return h.doWith(h.client, method, target, port, path, body)
}

func (h *Harness) doWith(c *http.Client, method, target string, port int, path, body string) (int, string, error) {
	a, err := h.Addr(target, port)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequest(method, "http://"+a+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), nil
}

// Healthy checks a service's /healthz on a machine.
func (h *Harness) Healthy(target string, port int) error {
	return h.healthyWith(h.client, target, port)
}

func (h *Harness) healthyWith(c *http.Client, target string, port int) error {
	code, _, err := h.doWith(c, http.MethodGet, target, port, "/healthz", "")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("health check answered %d", code)
	}
	return nil
}

// WaitSnapshot waits until the coordinator took a snapshot after t.
func (h *Harness) WaitSnapshot(ctx context.Context, after time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := h.Status()
		if err == nil && st.LastSnapshot.After(after) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("no snapshot was taken within %s", timeout)
}

// ServiceProcesses returns, per service name, the machines on which a
// process of that service runs (read from DYDISNIX_SERVICE in each process's
// environment), counting every running instance.
func (h *Harness) ServiceProcesses() map[string][]string {
	out := map[string][]string{}
	for _, m := range h.TB.Machines() {
		pids, err := exec.Command("ip", "netns", "pids", m.Host.Netns).Output()
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(pids)) {
			env, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
			if err != nil {
				continue
			}
			for _, kv := range strings.Split(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, "DYDISNIX_SERVICE="); ok {
					out[v] = append(out[v], m.Name)
				}
			}
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// Placement renders which machine runs what.
func (st *Status) Placement(services []string) string {
	byTarget := map[string][]string{}
	for _, s := range services {
		t := st.TargetOf(s)
		byTarget[t] = append(byTarget[t], s)
	}
	names := make([]string, 0, len(byTarget))
	for t := range byTarget {
		names = append(names, t)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, t := range names {
		fmt.Fprintf(&b, "\n    %-10s %s", t, strings.Join(byTarget[t], ", "))
	}
	return b.String()
}
