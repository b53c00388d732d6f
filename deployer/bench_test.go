package deployer_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// benchCluster starts n agents for a benchmark.
func benchCluster(b *testing.B, n int) *cluster {
	needTestsvc(b)
	c := &cluster{agents: map[string]*testAgent{}, infra: model.Infrastructure{}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("t%d", i)
		ta := startAgent(b, name, b.TempDir(), "")
		c.agents[name] = ta
		c.infra[name] = &model.Target{Name: name, Properties: map[string]any{"agentURL": ta.url()}, Extra: map[string]any{}}
	}
	b.Cleanup(func() {
		for _, ta := range c.agents {
			ta.stop(true)
		}
	})
	st, err := deployer.OpenStore(b.TempDir(), 3)
	if err != nil {
		b.Fatal(err)
	}
	c.store = st
	c.be = &deployer.AgentBackend{Token: testToken, Parallel: 8, Store: st, TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	return c
}

// benchSystem is 50 services: 10 chains of 5 (each depends on the previous
// one), placed round robin over the targets.
func benchSystem(b *testing.B, targets int) (model.Services, model.Distribution) {
	svcs := model.Services{}
	d := model.Distribution{}
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("s%02d", i)
		var deps []string
		if i%5 != 0 {
			deps = []string{fmt.Sprintf("s%02d", i-1)}
		}
		svcs[name] = svc(b, name, "peer", deps, nil, false)
		d[name] = []model.Mapping{{Target: fmt.Sprintf("t%d", 1+i%targets)}}
	}
	return svcs, d
}

func benchDeploy(b *testing.B, c *cluster, svcs model.Services, d model.Distribution) *deployer.Plan {
	man, err := deployer.BuildManifest(svcs, c.infra, d, deployer.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	old, _ := c.store.Latest()
	plan, err := deployer.PlanTransition(old, man, deployer.PlanOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := deployer.Deploy(context.Background(), c.be, c.store, plan, nil); err != nil {
		b.Fatal(err)
	}
	return plan
}

// BenchmarkFreshDeploy50x5 deploys 50 process services (10 dependency
// chains of 5) on 5 agents from nothing; every activation waits for the
// service's HTTP health check.
func BenchmarkFreshDeploy50x5(b *testing.B) {
	c := benchCluster(b, 5)
	svcs, d := benchSystem(b, 5)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchDeploy(b, c, svcs, d)
		b.StopTimer()
		benchDeploy(b, c, model.Services{}, model.Distribution{}) // undeploy
		b.StartTimer()
	}
}

// BenchmarkMoveOneService50x5 moves the head of one chain to another agent:
// it and its 4 transitive dependents are reactivated, the other 45 services
// are untouched.
func BenchmarkMoveOneService50x5(b *testing.B) {
	c := benchCluster(b, 5)
	svcs, d := benchSystem(b, 5)
	benchDeploy(b, c, svcs, d)
	moved := d.Clone()
	moved["s00"] = []model.Mapping{{Target: "t2"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			benchDeploy(b, c, svcs, moved)
		} else {
			benchDeploy(b, c, svcs, d)
		}
	}
}

// BenchmarkAgentRSS20Processes runs the real dydisnix-agent binary,
// deploys 20 process services on it and reports the agent's resident set
// size (VmRSS) while it supervises them.
func BenchmarkAgentRSS20Processes(b *testing.B) {
	needTestsvc(b)
	bin := filepath.Join(b.TempDir(), "dydisnix-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/dydisnix-agent").CombinedOutput(); err != nil {
		b.Fatalf("build agent: %v\n%s", err, out)
	}
	dir := b.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(testToken), 0o600)
	port := testenv.Port(b)
	cmd := exec.Command(bin, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--state-dir", filepath.Join(dir, "state"), "--token-file", tokFile, "--drain-timeout", "1s")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if resp, err := http.Get(url + "/v1/health"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			b.Fatal("agent did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	c := &cluster{agents: map[string]*testAgent{}, infra: model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"agentURL": url}, Extra: map[string]any{}}}}
	st, _ := deployer.OpenStore(b.TempDir(), 3)
	c.store = st
	c.be = &deployer.AgentBackend{Token: testToken, Parallel: 8, Store: st, TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	svcs := model.Services{}
	d := model.Distribution{}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("p%02d", i)
		svcs[name] = svc(b, name, "peer", nil, nil, false)
		d[name] = []model.Mapping{{Target: "t1"}}
	}
	benchDeploy(b, c, svcs, d)
	time.Sleep(500 * time.Millisecond)
	b.ResetTimer()
	var rss int64
	for i := 0; i < b.N; i++ {
		rss = vmRSS(b, cmd.Process.Pid)
	}
	b.ReportMetric(float64(rss)/1024, "agent-RSS-MB")
	benchDeploy(b, c, model.Services{}, model.Distribution{})
}

func vmRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n // kB
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
