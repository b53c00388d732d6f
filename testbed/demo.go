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
	"strings"
	"syscall"
	"time"
)

// DemoConfig configures RunDemo.
type DemoConfig struct {
	// Dir holds the demo's files (models, coordinator state, logs).
	Dir string
	// BinDir holds the dydisnix commands and the example services.
	BinDir string
	// Progress receives the human-readable story; nil discards it.
	Progress io.Writer
	// Machines is the number of machines at the start (default 4).
	Machines int
}

// DemoEvent is what one network change did.
type DemoEvent struct {
	Event       string   `json:"event"` // crash, stop or add
	Target      string   `json:"target"`
	DetectedMs  int64    `json:"detectedMs"`
	RecoveredMs int64    `json:"recoveredMs"`
	Moved       []string `json:"moved"`
	DataIntact  bool     `json:"dataIntact"`
}

// DemoReport is the demo's result.
type DemoReport struct {
	Events []DemoEvent `json:"events"`
}

// The example system's services and the ports they listen on. Every
// machine is a namespace of its own, so fixed ports never collide.
var demoServices = []struct {
	name, bin  string
	port       int
	dependsOn  []string
	connectsTo []string
	stateful   bool
}{
	{"kvstore", "kvstore", 7001, nil, nil, true},
	{"webfront", "webfront", 7002, []string{"kvstore"}, nil, false},
	{"peerA", "peer", 7003, nil, []string{"peerB"}, false},
	{"peerB", "peer", 7004, nil, []string{"peerA"}, false},
	{"chord-bootstrap", "chord", 7005, nil, nil, false},
	{"chord-node1", "chord", 7006, []string{"chord-bootstrap"}, nil, false},
	{"chord-node2", "chord", 7007, []string{"chord-bootstrap"}, nil, false},
}

// DemoServicesModel returns the example system as a services model (JSON
// form) whose packages are the example binaries in binDir.
func DemoServicesModel(binDir string) map[string]any {
	m := map[string]any{}
	for _, s := range demoServices {
		svc := map[string]any{
			"name":        s.name,
			"type":        "process",
			"pkg":         filepath.Join(binDir, "dydisnix-example-"+s.bin),
			"port":        s.port,
			"healthCheck": fmt.Sprintf("http://127.0.0.1:%d/healthz", s.port),
		}
		if s.dependsOn != nil {
			svc["dependsOn"] = s.dependsOn
		}
		if s.connectsTo != nil {
			svc["connectsTo"] = s.connectsTo
		}
		if s.stateful {
			svc["stateful"] = true
			svc["deployState"] = true
		}
		m[s.name] = svc
	}
	return m
}

// DemoPolicy is the demo's QoS policy: only machines that support the
// service's type, stateful services stay where they are, the rest round robin.
const DemoPolicy = `steps:
  - filter: mapAttrOnList
    serviceProperty: type
    targetPropertyList: supportedTypes
  - filter: mapStatefulToPrevious
  - filter: divideRoundRobin
`

type demo struct {
	cfg      DemoConfig
	tb       *Testbed
	out      io.Writer
	client   *http.Client
	status   string // URL of the coordinator's /status
	loop     *exec.Cmd
	loopDone chan struct{}
	keys     map[string]string
	report   DemoReport
}

// adaptStatus is the part of the coordinator's /status the demo reads.
type adaptStatus struct {
	Phase        string           `json:"phase"`
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

// RunDemo starts a testbed of machines and the self-adaptive loop in a
// coordinator namespace, deploys the example system, writes data, crashes a
// machine, stops another gracefully and adds a new one, checking after each
// event that every service is healthy again and the data is intact.
func RunDemo(ctx context.Context, cfg DemoConfig) (*DemoReport, error) {
	if cfg.Machines == 0 {
		cfg.Machines = 4
	}
	out := cfg.Progress
	if out == nil {
		out = io.Discard
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	d := &demo{cfg: cfg, out: out, keys: map[string]string{}}
	d.say("Starting %d machines, each a network namespace with a dydisnix-agent announcing itself over mDNS", cfg.Machines)
	tb, err := New(Config{Dir: filepath.Join(cfg.Dir, "testbed"), BinDir: cfg.BinDir, DrainTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	d.tb = tb
	defer func() {
		d.stopLoop()
		tb.Close()
	}()
	for i := 1; i <= cfg.Machines; i++ {
		if _, err := tb.Add(fmt.Sprintf("machine%d", i), nil); err != nil {
			return nil, err
		}
	}
	d.client = tb.Coordinator().HTTPClient(5 * time.Second)
	if err := d.startLoop(); err != nil {
		return &d.report, err
	}
	err = d.story(ctx)
	return &d.report, err
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (d *demo) startLoop() error {
	dir := d.cfg.Dir
	svcs, _ := json.MarshalIndent(DemoServicesModel(d.cfg.BinDir), "", "  ")
	files := map[string][]byte{
		"services.json": svcs,
		"qos.yaml":      []byte(DemoPolicy),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	coord := d.tb.Coordinator()
	statusAddr := fmt.Sprintf("%s:9200", coord.Addr)
	d.status = "http://" + statusAddr + "/status"
	logf, err := os.Create(filepath.Join(dir, "self-adapt.log"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	args := []string{
		"-s", filepath.Join(dir, "services.json"),
		"-q", filepath.Join(dir, "qos.yaml"),
		"--deployer", "agent",
		"--agent-token-file", d.tb.TokenFile(),
		"--state-dir", filepath.Join(dir, "coordinator"),
		"--status-listen", statusAddr,
		"--interface", coord.Iface,
		"--snapshot",
		"--snapshot-schedule", "@every 2s",
		"--log-format", "json",
	}
	cmd := coord.Command(filepath.Join(d.cfg.BinDir, "dydisnix-self-adapt"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("demo: start dydisnix-self-adapt: %w", err)
	}
	d.loop = cmd
	d.loopDone = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(d.loopDone) }()
	d.say("Coordinator: dydisnix-self-adapt in its own namespace (%s), status on http://%s/", coord.Addr, statusAddr)
	return nil
}

func (d *demo) stopLoop() {
	if d.loop == nil {
		return
	}
	d.loop.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.loopDone:
	case <-time.After(30 * time.Second):
		syscall.Kill(-d.loop.Process.Pid, syscall.SIGKILL)
		<-d.loopDone
	}
	d.loop = nil
}

func (d *demo) fetchStatus() (*adaptStatus, error) {
	resp, err := d.client.Get(d.status)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st adaptStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decode /status: %w", err)
	}
	return &st, nil
}

func (d *demo) loopLog() string {
	data, _ := os.ReadFile(filepath.Join(d.cfg.Dir, "self-adapt.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// targetOf returns the first target of a service in a /status distribution.
func targetOf(dist map[string][]any, svc string) string {
	for _, m := range dist[svc] {
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

// settled waits until the coordinator has deployed successfully after seq
// (every service placed, none on a machine in avoid) and every service
// answers its health check. It returns the status and when it was reached.
func (d *demo) settled(ctx context.Context, afterSeq int, avoid string, timeout time.Duration) (*adaptStatus, time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		case <-d.loopDone:
			return nil, time.Time{}, fmt.Errorf("dydisnix-self-adapt exited; its log ends:\n%s", d.loopLog())
		case <-time.After(100 * time.Millisecond):
		}
		st, err := d.fetchStatus()
		if err != nil {
			last = err.Error()
			continue
		}
		if st.LastDeploy == nil || st.LastDeploy.Seq <= afterSeq || st.Phase != "idle" {
			last = fmt.Sprintf("phase %s, waiting for a deploy after #%d", st.Phase, afterSeq)
			continue
		}
		if st.LastDeploy.Result != "success" {
			last = "last deploy failed: " + st.LastDeploy.Error
			continue
		}
		ok := true
		for _, s := range demoServices {
			t := targetOf(st.Distribution, s.name)
			if t == "" || t == avoid {
				ok = false
				last = fmt.Sprintf("%s is placed on %q", s.name, t)
				break
			}
			if err := d.healthy(t, s.port); err != nil {
				ok = false
				last = fmt.Sprintf("%s on %s: %v", s.name, t, err)
				break
			}
		}
		if ok {
			return st, time.Now(), nil
		}
	}
	return nil, time.Time{}, fmt.Errorf("the system did not settle within %s: %s", timeout, last)
}

func (d *demo) addr(target string, port int) (string, error) {
	m, ok := d.tb.Machine(target)
	if !ok {
		return "", fmt.Errorf("unknown machine %s", target)
	}
	return fmt.Sprintf("%s:%d", m.Host.Addr, port), nil
}

func (d *demo) healthy(target string, port int) error {
	a, err := d.addr(target, port)
	if err != nil {
		return err
	}
	resp, err := d.client.Get("http://" + a + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}

// kv talks to the key-value store through the web front end.
func (d *demo) kv(st *adaptStatus, method, key, value string) (string, error) {
	a, err := d.addr(targetOf(st.Distribution, "webfront"), 7002)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(method, "http://"+a+"/kv/"+key, strings.NewReader(value))
	if err != nil {
		return "", err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s /kv/%s: %s: %s", method, key, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func (d *demo) write(st *adaptStatus, n int, tag string) error {
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("value %d written before the %s", i, tag)
		if _, err := d.kv(st, http.MethodPut, k, v); err != nil {
			return err
		}
		d.keys[k] = v
	}
	return nil
}

func (d *demo) intact(st *adaptStatus) bool {
	keys := make([]string, 0, len(d.keys))
	for k := range d.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, err := d.kv(st, http.MethodGet, k, "")
		if err != nil || got != d.keys[k] {
			d.say("  data check: key %s: got %q (%v), want %q", k, got, err, d.keys[k])
			return false
		}
	}
	return true
}

func (d *demo) placement(st *adaptStatus) string {
	byTarget := map[string][]string{}
	for _, s := range demoServices {
		t := targetOf(st.Distribution, s.name)
		byTarget[t] = append(byTarget[t], s.name)
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

func (d *demo) waitSnapshot(ctx context.Context, after time.Time) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := d.fetchStatus()
		if err == nil && st.LastSnapshot.After(after) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("no snapshot was taken within 30s")
}

func (d *demo) story(ctx context.Context) error {
	st, _, err := d.settled(ctx, 0, "", 90*time.Second)
	if err != nil {
		return fmt.Errorf("initial deployment: %w", err)
	}
	d.say("Deployed the example system (deploy #%d):%s", st.LastDeploy.Seq, d.placement(st))
	if err := d.write(st, 10, "crash"); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	wrote := time.Now()
	if err := d.waitSnapshot(ctx, wrote); err != nil {
		return err
	}
	d.say("Wrote 10 keys through webfront into kvstore; the coordinator's snapshot job has saved them")

	// 1. A crash of the machine that holds the state.
	victim := targetOf(st.Distribution, "kvstore")
	if err := d.event(ctx, st, "crash", victim, func() error { return d.tb.Crash(victim) }); err != nil {
		return err
	}
	st, _ = d.fetchStatus()

	// 2. A graceful leave of the machine that now holds the state: its
	// state is migrated, including what was written after the last snapshot.
	if err := d.write(st, 5, "stop"); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	leaver := targetOf(st.Distribution, "kvstore")
	if err := d.event(ctx, st, "stop", leaver, func() error { return d.tb.Stop(leaver) }); err != nil {
		return err
	}
	st, _ = d.fetchStatus()

	// 3. A new machine joins.
	newName := fmt.Sprintf("machine%d", d.cfg.Machines+1)
	if err := d.event(ctx, st, "add", newName, func() error {
		_, err := d.tb.Add(newName, nil)
		return err
	}); err != nil {
		return err
	}
	d.say("Done: %d events, every service healthy, no data lost.", len(d.report.Events))
	return nil
}

func (d *demo) event(ctx context.Context, before *adaptStatus, kind, target string, do func() error) error {
	d.say("Event: %s %s", kind, target)
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- do() }()
	if kind != "stop" {
		if err := <-errc; err != nil {
			return fmt.Errorf("%s %s: %w", kind, target, err)
		}
	}
	avoid := ""
	if kind != "add" {
		avoid = target
	}
	st, at, err := d.settled(ctx, before.LastDeploy.Seq, avoid, 90*time.Second)
	if err != nil {
		return fmt.Errorf("after %s %s: %w", kind, target, err)
	}
	if kind == "stop" {
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("stop %s: %w", target, err)
			}
		case <-time.After(60 * time.Second):
			return fmt.Errorf("stop %s: the machine did not finish draining", target)
		}
	}
	ev := DemoEvent{Event: kind, Target: target, RecoveredMs: at.Sub(start).Milliseconds(), Moved: []string{}}
	if ld := st.LastDeploy; ld != nil {
		if !ld.ChangeAt.IsZero() {
			ev.DetectedMs = ld.ChangeAt.Sub(start).Milliseconds()
		}
		ev.Moved = append(ev.Moved, ld.Moved...)
	}
	for _, s := range demoServices {
		if targetOf(before.Distribution, s.name) != targetOf(st.Distribution, s.name) && !contains(ev.Moved, s.name) {
			ev.Moved = append(ev.Moved, s.name)
		}
	}
	sort.Strings(ev.Moved)
	ev.DataIntact = d.intact(st)
	d.report.Events = append(d.report.Events, ev)
	d.say("  detected after %d ms, every service healthy after %d ms; moved: %s; data intact: %v%s",
		ev.DetectedMs, ev.RecoveredMs, strings.Join(ev.Moved, ", "), ev.DataIntact, d.placement(st))
	if !ev.DataIntact {
		return fmt.Errorf("after %s %s: data lost", kind, target)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
