package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// haBed is a testbed for coordinator high availability: machines with the
// agents' fault hook, registered in the testbed's etcd (one member in a
// namespace of its own), and two coordinators, each in its own namespace
// (coords[0] in "coordinator", coords[1] in "coordinator2"), electing a
// leader over etcd.
type haBed struct {
	tb       *Testbed
	coords   [2]*Harness
	faultDir string
}

// startHABed starts the machines and etcd; the loops are started by the
// caller (StartLoop). Everything stops when the test ends.
func startHABed(t testing.TB, bin, dir string, machines int) *haBed {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for network namespaces (CI runs as root)")
	}
	testenv.NeedCommand(t, "etcd")
	bed := &haBed{faultDir: filepath.Join(dir, "faults")}
	tb, err := New(Config{Dir: filepath.Join(dir, "testbed"), BinDir: bin, DrainTimeout: 5 * time.Second, Etcd: 1,
		AgentEnv: []string{agent.FaultDirEnv + "=" + filepath.Join(bed.faultDir, "{machine}")}})
	if err != nil {
		t.Fatal(err)
	}
	bed.tb = tb
	t.Cleanup(func() { tb.Close() })
	for i := 1; i <= machines; i++ {
		name := fmt.Sprintf("machine%d", i)
		if err := os.MkdirAll(filepath.Join(bed.faultDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.Add(name, nil); err != nil {
			t.Fatal(err)
		}
	}
	host2, err := tb.AddCoordinator("coordinator2")
	if err != nil {
		t.Fatal(err)
	}
	// The harness adds the testbed's --registry.
	registry := []string{"--leader-ttl", "3", "--stabilise", "1s", "--snapshot-schedule", "@every 1h"}
	for i, host := range []*Host{tb.Coordinator(), host2} {
		cfg := HarnessConfig{Dir: filepath.Join(dir, fmt.Sprintf("coordinator%d", i+1)), BinDir: bin, Coordinator: host, LoopArgs: registry}
		if testing.Verbose() {
			cfg.Progress = os.Stderr
		}
		h, err := AttachHarness(tb, cfg)
		if err != nil {
			t.Fatal(err)
		}
		bed.coords[i] = h
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("coordinator%d log:\n%s", i+1, h.LoopLog(30))
			}
			h.StopLoop()
		})
	}
	return bed
}

// leader returns a coordinator's view of the election ("" before any).
func leader(h *Harness) (st *Status, leading bool) {
	st, err := h.Status()
	if err != nil || st.Leader == nil {
		return nil, false
	}
	return st, st.Leader.Leading
}

// waitLeads waits until h leads and returns its status.
func waitLeads(t testing.TB, h *Harness, what string) *Status {
	t.Helper()
	var st *Status
	testenv.Eventually(t, time.Minute, func() bool {
		s, ok := leader(h)
		st = s
		return ok
	}, "%s leads", what)
	return st
}

// waitStandby waits until h stands by behind the coordinator named name.
func waitStandby(t testing.TB, h *Harness, name, what string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() bool {
		st, leading := leader(h)
		return st != nil && !leading && st.Leader.Name == name && st.Phase == "standby"
	}, "%s stands by behind %s", what, name)
}

// checkConsistent checks that every service of the model is placed and runs
// exactly where the distribution says: no service twice, none missing.
func checkConsistent(t *testing.T, h *Harness, st *Status) {
	t.Helper()
	running := h.ServiceProcesses()
	for svc := range h.ServicePorts() {
		var want []string
		for _, m := range st.Distribution[svc] {
			switch x := m.(type) {
			case string:
				want = append(want, x)
			case map[string]any:
				want = append(want, fmt.Sprint(x["target"]))
			}
		}
		slices.Sort(want)
		if len(want) == 0 || !slices.Equal(running[svc], want) {
			t.Errorf("service %s runs on %v, the distribution places it on %v", svc, running[svc], want)
		}
	}
}

// armActivate makes the next activation on each of the machines block until
// disarmActivate (the agents' test-only fault hook).
func (bed *haBed) armActivate(t *testing.T, machines ...string) {
	for _, m := range machines {
		if err := os.WriteFile(filepath.Join(bed.faultDir, m, agent.FaultActivate), []byte("block"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (bed *haBed) heldActivation() bool {
	held, _ := filepath.Glob(filepath.Join(bed.faultDir, "*", agent.FaultActivate+".held"))
	return len(held) > 0
}

func (bed *haBed) disarmActivate() {
	for _, suffix := range []string{"", ".held"} {
		files, _ := filepath.Glob(filepath.Join(bed.faultDir, "*", agent.FaultActivate+suffix))
		for _, f := range files {
			os.Remove(f)
		}
	}
}

// termEnded returns when the coordinator logged the end of its term.
func termEnded(h *Harness) (time.Time, bool) {
	data, _ := os.ReadFile(h.Path("self-adapt.log"))
	for _, line := range strings.Split(string(data), "\n") {
		var e struct {
			TS  any    `json:"ts"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "election: this coordinator no longer leads" {
			continue
		}
		switch ts := e.TS.(type) {
		case float64:
			return time.Unix(0, int64(ts*1e9)), true
		case string:
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// lateClient is an agent client of machine in the namespace of from, whose
// requests carry the fencing revision rev.
func (bed *haBed) lateClient(t *testing.T, from *Host, machine string, rev int64) *agentapi.Client {
	t.Helper()
	m, ok := bed.tb.Machine(machine)
	if !ok {
		t.Fatalf("no machine %s", machine)
	}
	dir := bed.tb.tlsDir
	cfg, err := fleettls.ClientConfig(filepath.Join(dir, fleettls.CAFile), filepath.Join(dir, fleettls.CertFile("coordinator")),
		filepath.Join(dir, fleettls.KeyFile("coordinator")))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: from.DialContext,
		TLSClientConfig: fleettls.ForTarget(cfg, machine)}}
	token, err := os.ReadFile(bed.tb.TokenFile())
	if err != nil {
		t.Fatal(err)
	}
	c := agentapi.NewClient(fmt.Sprintf("https://%s:%d", m.Host.Addr, bed.tb.cfg.AgentPort), strings.TrimSpace(string(token)), hc)
	c.Fence = func() int64 { return rev }
	return c
}

// TestHACoordinators runs two coordinators electing a leader over etcd:
// the leader killed (kill -9) in the middle of a transition, the standby
// takes over and the system converges to one consistent configuration;
// then the new leader is cut off from etcd: it stops deploying before the
// other is elected, and an agent refuses a step sent on purpose with its
// old revision.
func TestHACoordinators(t *testing.T) {
	bed := startHABed(t, buildBinaries(t), t.TempDir(), 3)
	a, b := bed.coords[0], bed.coords[1]
	if err := a.StartLoop(); err != nil {
		t.Fatal(err)
	}
	first := waitLeads(t, a, "the first coordinator")
	settle(t, a, 0, "")
	if err := b.StartLoop(); err != nil {
		t.Fatal(err)
	}
	waitStandby(t, b, first.Leader.Name, "the second coordinator")

	// kill -9 of the leader while a transition runs: the crash of
	// machine2 moves its services; an activation they need blocks on the
	// agent until the leader is dead.
	bed.armActivate(t, "machine1", "machine3")
	if err := bed.tb.Crash("machine2"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, bed.heldActivation, "the leader's transition reaches an activation")
	a.KillLoop()
	bed.disarmActivate()
	second := waitLeads(t, b, "the standby")
	if second.Leader.Revision <= first.Leader.Revision {
		t.Fatalf("the new leader's revision %d is not above the dead one's %d", second.Leader.Revision, first.Leader.Revision)
	}
	st := settle(t, b, 0, "machine2")
	checkConsistent(t, b, st)

	// The first coordinator comes back as the standby; the leader is cut
	// off from etcd (its agents stay reachable).
	if err := a.StartLoop(); err != nil {
		t.Fatal(err)
	}
	waitStandby(t, a, second.Leader.Name, "the restarted coordinator")
	for _, m := range bed.tb.etcd {
		if err := run("ip", "-n", b.cfg.Coordinator.Netns, "route", "add", "blackhole", m.host.Addr.String()+"/32"); err != nil {
			t.Fatal(err)
		}
	}
	third := waitLeads(t, a, "the standby after the partition")
	ended, ok := termEnded(b)
	if !ok {
		t.Fatal("the partitioned leader never ended its term")
	}
	if !ended.Before(third.Leader.Since) {
		t.Fatalf("the partitioned leader ended its term at %v, the new one leads since %v", ended, third.Leader.Since)
	}
	testenv.Eventually(t, time.Minute, func() bool { st, err := b.Status(); return err == nil && st.Phase == "standby" },
		"the partitioned coordinator stands by")
	st = settle(t, a, 0, "machine2")
	checkConsistent(t, a, st)

	// A late step of the partitioned leader, delivered on purpose from its
	// namespace with its old revision: refused.
	late := bed.lateClient(t, b.cfg.Coordinator, "machine1", second.Leader.Revision)
	for name, step := range map[string]func() error{
		"lock":       func() error { return late.Lock(context.Background(), "late") },
		"deactivate": func() error { return late.Deactivate(context.Background(), "late") },
	} {
		err := step()
		var se *agentapi.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusConflict || !strings.Contains(se.Msg, "fenced") {
			t.Errorf("late %s of the deposed leader (revision %d): %v, want 409 fenced", name, second.Leader.Revision, err)
		}
	}
	checkConsistent(t, a, st)
}

// BenchmarkHAFailover measures the failover of the coordinators (issue 13's
// speed targets): the leading coordinator is killed (kill -9, its session
// is not revoked) as the machine holding kvstore crashes, so the next
// transition falls to the standby. From the kill:
//
//   - leader-kill-to-elected-ms: until the standby is elected (its term's
//     start), about the session TTL (--leader-ttl 3);
//   - leader-kill-to-healthy-ms: until the new leader has moved the
//     crashed machine's services and every service answers its health
//     check (target < 5 s with the 3 s TTL).
//
// Each iteration (not timed) restarts the killed coordinator as the
// standby and adds a fresh machine. Run it with
//
//	go test -run '^$' -bench BenchmarkHAFailover -benchtime 3x ./testbed/
func BenchmarkHAFailover(b *testing.B) {
	dir := b.TempDir()
	if keep := os.Getenv("DYDISNIX_BENCH_DIR"); keep != "" {
		dir = filepath.Join(keep, "BenchmarkHAFailover")
		os.RemoveAll(dir)
	}
	bed := startHABed(b, benchBinaries(b), dir, 4)
	lead, standby := bed.coords[0], bed.coords[1]
	if err := lead.StartLoop(); err != nil {
		b.Fatal(err)
	}
	waitLeads(b, lead, "the first coordinator")
	if _, _, err := lead.Settled(context.Background(), 0, "", 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	if err := standby.StartLoop(); err != nil {
		b.Fatal(err)
	}
	var elected, healthy []time.Duration
	next := 5
	for b.Loop() {
		st, _ := lead.Status()
		waitStandby(b, standby, st.Leader.Name, "the standby")
		sb, err := standby.Status()
		if err != nil {
			b.Fatal(err)
		}
		victim := st.TargetOf("kvstore")
		t0 := time.Now()
		lead.KillLoop()
		if err := bed.tb.Crash(victim); err != nil {
			b.Fatal(err)
		}
		now := waitLeads(b, standby, "the standby")
		_, healthyAt, err := standby.Settled(context.Background(), sb.Seq(), victim, 2*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		elected = append(elected, now.Leader.Since.Sub(t0))
		healthy = append(healthy, healthyAt.Sub(t0))
		b.Logf("leader killed with %s: standby elected after %v, every service healthy after %v",
			victim, now.Leader.Since.Sub(t0).Round(time.Millisecond), healthyAt.Sub(t0).Round(time.Millisecond))
		if err := lead.StartLoop(); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("machine%d", next)
		next++
		if err := os.MkdirAll(filepath.Join(bed.faultDir, name), 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := bed.tb.Add(name, nil); err != nil {
			b.Fatal(err)
		}
		testenv.Eventually(b, time.Minute, func() bool {
			st, err := standby.Status()
			return err == nil && slices.Contains(st.Discovered, name) && st.Phase == "idle"
		}, "the new leader sees %s", name)
		lead, standby = standby, lead
		b.StartTimer()
	}
	b.ReportMetric(ms(mean(elected)), "leader-kill-to-elected-ms")
	b.ReportMetric(ms(mean(healthy)), "leader-kill-to-healthy-ms")
	b.ReportMetric(ms(slices.Max(healthy)), "leader-kill-to-healthy-max-ms")
}
