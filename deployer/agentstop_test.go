package deployer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

var (
	agentBinOnce sync.Once
	agentBin     string
	agentBinErr  error
)

// needAgentBinary builds cmd/dydisnix-agent once per run.
func needAgentBinary(t testing.TB) string {
	t.Helper()
	needTestsvc(t) // creates buildDir
	agentBinOnce.Do(func() {
		agentBin = filepath.Join(buildDir, "dydisnix-agent")
		if out, err := exec.Command("go", "build", "-o", agentBin, "../cmd/dydisnix-agent").CombinedOutput(); err != nil {
			agentBinErr = fmt.Errorf("build agent: %v\n%s", err, out)
		}
	})
	if agentBinErr != nil {
		t.Fatal(agentBinErr)
	}
	return agentBin
}

// agentProcess is a real dydisnix-agent process whose JSON log lines are
// delivered, as they are written, on logs.
type agentProcess struct {
	cmd  *exec.Cmd
	addr string
	logs chan map[string]any
	mu   sync.Mutex
	text strings.Builder // the whole log, for failure messages
}

func startAgentProcess(t *testing.T, args ...string) *agentProcess {
	t.Helper()
	bin := needAgentBinary(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	ap := &agentProcess{logs: make(chan map[string]any, 1000)}
	ap.cmd = exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "state"),
		"--token-file", tok, "--insecure-http", "--log-format", "json"}, args...)...)
	stderr, err := ap.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ap.cmd.Process.Kill(); ap.cmd.Wait() }) // harmless once it exited
	go func() {
		defer close(ap.logs)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			ap.mu.Lock()
			ap.text.WriteString(sc.Text() + "\n")
			ap.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case ap.logs <- rec:
				default: // nobody waits for that many: never block the agent's writes
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	ap.addr, _ = ap.waitLog(t, "agent listening")["address"].(string)
	return ap
}

// waitLog returns the next log record with message msg.
func (ap *agentProcess) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	for rec := range ap.logs {
		if rec["msg"] == msg {
			return rec
		}
	}
	t.Fatalf("the agent ended without logging %q:\n%s", msg, ap.log())
	return nil
}

func (ap *agentProcess) log() string {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return ap.text.String()
}

// groupMembers returns the live processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == fmt.Sprint(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestAgentSecondSignalStopsItsServices: SIGTERM makes the agent drain;
// a second SIGTERM during the drain ends it at once, and the agent stops
// every process it started (with their children) before it exits 0. (The
// second signal used to kill the agent and leave its services running.)
func TestAgentSecondSignalStopsItsServices(t *testing.T) {
	ap := startAgentProcess(t, "--drain-timeout", "1h")
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": "http://" + ap.addr, "hostname": "127.0.0.1"}, Extra: map[string]any{}}}
	svcs := model.Services{
		"kv": svc(t, "kv", "kv", nil, nil, true),
		// A shell with a child of its own, both in the service's group.
		"sh": {Name: "sh", Type: "process", Attrs: map[string]any{"command": []any{"sh", "-c", "sleep 1000 & sleep 1000"}}},
	}
	man, err := deployer.BuildManifest(svcs, infra, dist("kv", "t1", "sh", "t1"), deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	be := &deployer.AgentBackend{Token: testToken, TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	if err := be.Execute(context.Background(), plan, nil); err != nil {
		t.Fatalf("deploy: %v\n%s", err, ap.log())
	}
	cl, err := be.ClientFor(infra["t1"], "")
	if err != nil {
		t.Fatal(err)
	}
	prof, err := cl.Profile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range prof.Services {
		members := groupMembers(s.Pid) // each service runs in its own group
		if len(members) == 0 {
			t.Fatalf("service %s (pid %d) has no live process", s.Service.Name, s.Pid)
		}
		pids = append(pids, members...)
	}
	if len(prof.Services) != 2 || len(pids) < 3 {
		t.Fatalf("profile %+v, processes %v: want kv and sh with its child", prof.Services, pids)
	}

	ap.cmd.Process.Signal(syscall.SIGTERM)
	ap.waitLog(t, "draining")
	ap.cmd.Process.Signal(syscall.SIGTERM)
	err = ap.cmd.Wait()
	if err != nil {
		t.Errorf("agent exit after the second SIGTERM: %v (want status 0)\n%s", err, ap.log())
	}
	// The agent killed the rest of each group as it exited: on a loaded
	// machine a killed process may still be on its way out (its command
	// line already gone). A process the agent left running stays.
	var left []int
	t.Cleanup(func() {
		for _, pid := range left {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Logf("left running: %d (%s)", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	testenv.Eventually(t, 30*time.Second, func() bool {
		left = slices.DeleteFunc(slices.Clone(pids), func(pid int) bool { return !alive(pid) })
		return len(left) == 0
	}, "the services' processes gone after the agent exited; its log:\n%s", ap.log())
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}
