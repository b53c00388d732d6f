package testbed

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
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
	// Status, when set, is a listener in the host's network namespace
	// forwarded to the loop's status page.
	Status net.Listener
	// KeepRunning keeps the machines and the loop running after the story
	// until ctx ends.
	KeepRunning bool
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

// demoService is one service of the example system.
type demoService struct {
	name, bin  string
	port       int
	dependsOn  []string
	connectsTo []string
	stateful   bool
}

// The example system: a stateful store and a web front end on it, a
// connectsTo pair, and a Chord-style ring. Every machine is a namespace of
// its own, so fixed ports never collide.
var demoServices = []demoService{
	{"kvstore", "kvstore", 7001, nil, nil, true},
	{"webfront", "webfront", 7002, []string{"kvstore"}, nil, false},
	{"peerA", "peer", 7003, nil, []string{"peerB"}, false},
	{"peerB", "peer", 7004, nil, []string{"peerA"}, false},
	{"chord-bootstrap", "chord", 7005, nil, nil, false},
	{"chord-node1", "chord", 7006, []string{"chord-bootstrap"}, nil, false},
	{"chord-node2", "chord", 7007, []string{"chord-bootstrap"}, nil, false},
}

// DemoServiceNames lists the example system's services.
func DemoServiceNames() []string {
	out := make([]string, len(demoServices))
	for i, s := range demoServices {
		out[i] = s.name
	}
	return out
}

// DemoServicesModel returns the example system as a services model (JSON
// form) whose packages are the example binaries in binDir.
func DemoServicesModel(binDir string) map[string]any { return servicesModel(binDir, demoServices) }

// servicesModel renders services as a services model (JSON form) whose
// packages are the example binaries in binDir.
func servicesModel(binDir string, services []demoService) map[string]any {
	m := map[string]any{}
	for _, s := range services {
		svc := map[string]any{
			"name":        s.name,
			"type":        "process",
			"pkg":         filepath.Join(binDir, "examples", s.bin),
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
// service's type; a service stays where it ran while that machine is still
// a candidate (so a change moves as little as possible); what has to move,
// or is new, goes to the candidate hosting the fewest services, so the
// services of a machine that vanished spread over the survivors.
const DemoPolicy = `steps:
  - filter: mapAttrOnList
    serviceProperty: type
    targetPropertyList: supportedTypes
  - filter: preferPrevious
  - filter: divideLeastLoaded
`

type demo struct {
	h      *Harness
	keys   map[string]string
	report DemoReport
}

// RunDemo starts a testbed of machines and the self-adaptive loop in a
// coordinator namespace, deploys the example system, writes data, crashes a
// machine, stops another gracefully and adds a new one, checking after each
// event that every service is healthy again and the data is intact.
func RunDemo(ctx context.Context, cfg DemoConfig) (*DemoReport, error) {
	if cfg.Machines == 0 {
		cfg.Machines = 4
	}
	h, err := NewHarness(HarnessConfig{Dir: cfg.Dir, BinDir: cfg.BinDir, Machines: cfg.Machines, Progress: cfg.Progress})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	h.Say("Started %d machines, each a network namespace with a dydisnix-agent announcing itself over mDNS", cfg.Machines)
	if err := h.StartLoop(); err != nil {
		return nil, err
	}
	if l := cfg.Status; l != nil {
		if err := h.WaitStatus(ctx); err != nil {
			return nil, err
		}
		go h.TB.Coordinator().Forward(l, h.StatusAddr())
		defer l.Close()
		h.Say("Coordinator: dydisnix-self-adapt in a namespace of its own; its status page: http://%s/", l.Addr())
	} else {
		h.Say("Coordinator: dydisnix-self-adapt in a namespace of its own (status page not forwarded to the host)")
	}
	d := &demo{h: h, keys: map[string]string{}}
	err = d.story(ctx, cfg.Machines)
	if err == nil && cfg.KeepRunning {
		h.Say("Still running (--keep-running); Ctrl-C stops the machines and the loop")
		<-ctx.Done()
	}
	return &d.report, err
}

func (d *demo) kv(st *Status, method, key, value string) (string, error) {
	code, body, err := d.h.Do(method, st.TargetOf("webfront"), 7002, "/kv/"+key, value)
	if err != nil {
		return "", err
	}
	if code/100 != 2 {
		return "", fmt.Errorf("%s /kv/%s: %d: %s", method, key, code, strings.TrimSpace(body))
	}
	return body, nil
}

func (d *demo) write(st *Status, n int, tag string) error {
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("value %d written before the %s", i, tag)
		if _, err := d.kv(st, http.MethodPut, k, v); err != nil {
			return err
		}
		d.keys[k] = v
	}
	return nil
}

func (d *demo) intact(st *Status) bool {
	keys := make([]string, 0, len(d.keys))
	for k := range d.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, err := d.kv(st, http.MethodGet, k, "")
		if err != nil || got != d.keys[k] {
			d.h.Say("  data check: key %s: got %q (%v), want %q", k, got, err, d.keys[k])
			return false
		}
	}
	return true
}

func (d *demo) story(ctx context.Context, machines int) error {
	st, _, err := d.h.Settled(ctx, 0, "", 120*time.Second)
	if err != nil {
		return fmt.Errorf("initial deployment: %w", err)
	}
	d.h.Say("Deployed the example system (deploy #%d):%s", st.Seq(), st.Placement(DemoServiceNames()))
	if err := d.write(st, 10, "crash"); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	if err := d.h.WaitSnapshot(ctx, time.Now(), 30*time.Second); err != nil {
		return err
	}
	d.h.Say("Wrote 10 keys through webfront into kvstore; the coordinator's snapshot job has saved them")

	// 1. The machine that holds the state crashes.
	victim := st.TargetOf("kvstore")
	if st, err = d.event(ctx, st, "crash", victim, func() error { return d.h.TB.Crash(victim) }); err != nil {
		return err
	}
	// 2. The machine that now holds the state leaves gracefully: its state
	// is migrated, including what was written after the last snapshot.
	if err := d.write(st, 5, "stop"); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	leaver := st.TargetOf("kvstore")
	if st, err = d.event(ctx, st, "stop", leaver, func() error { return d.h.TB.Stop(leaver) }); err != nil {
		return err
	}
	// 3. A new machine joins.
	newName := fmt.Sprintf("machine%d", machines+1)
	if _, err = d.event(ctx, st, "add", newName, func() error {
		_, err := d.h.TB.Add(newName, nil)
		return err
	}); err != nil {
		return err
	}
	d.h.Say("Done: %d events, every service healthy, no data lost.", len(d.report.Events))
	return nil
}

func (d *demo) event(ctx context.Context, before *Status, kind, target string, do func() error) (*Status, error) {
	d.h.Say("Event: %s %s", kind, target)
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- do() }()
	if kind != "stop" { // a graceful stop returns only once the machine has drained
		if err := <-errc; err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, target, err)
		}
	}
	avoid := ""
	if kind != "add" {
		avoid = target
	}
	st, at, err := d.h.Settled(ctx, before.Seq(), avoid, 120*time.Second)
	if err != nil {
		return nil, fmt.Errorf("after %s %s: %w", kind, target, err)
	}
	if kind == "stop" {
		select {
		case err := <-errc:
			if err != nil {
				return nil, fmt.Errorf("stop %s: %w", target, err)
			}
		case <-time.After(90 * time.Second):
			return nil, fmt.Errorf("stop %s: the machine did not finish draining", target)
		}
	}
	ev := DemoEvent{Event: kind, Target: target, RecoveredMs: at.Sub(start).Milliseconds(), Moved: []string{}}
	if ld := st.LastDeploy; ld != nil && !ld.ChangeAt.IsZero() {
		ev.DetectedMs = ld.ChangeAt.Sub(start).Milliseconds()
	}
	for _, s := range DemoServiceNames() {
		if before.TargetOf(s) != st.TargetOf(s) {
			ev.Moved = append(ev.Moved, s)
		}
	}
	ev.DataIntact = d.intact(st)
	d.report.Events = append(d.report.Events, ev)
	d.h.Say("  detected after %d ms, every service healthy after %d ms; moved: %s; data intact: %v%s",
		ev.DetectedMs, ev.RecoveredMs, strings.Join(ev.Moved, ", "), ev.DataIntact, st.Placement(DemoServiceNames()))
	if !ev.DataIntact {
		return nil, fmt.Errorf("after %s %s: data lost", kind, target)
	}
	return st, nil
}
