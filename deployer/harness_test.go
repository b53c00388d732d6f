package deployer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/model"
)

// testsvc is the path of the test service binary built by TestMain.
var testsvc string

const testToken = "s3cret-token"

var (
	buildOnce sync.Once
	buildErr  error
	buildDir  string
)

// TestMain removes the test binary's directory after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needTestsvc builds the test service binary once per run (only the tests
// that run real processes pay for it).
func needTestsvc(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "deployer-test-bin-")
		if buildErr != nil {
			return
		}
		testsvc = filepath.Join(buildDir, "testsvc")
		cmd := exec.Command("go", "build", "-o", testsvc, "./testdata/testsvc")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build testsvc: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return testsvc
}

// testAgent is a real agent serving on a loopback port.
type testAgent struct {
	name string
	dir  string
	addr string
	a    *agent.Agent
	srv  *http.Server
	done chan struct{}
}

func startAgent(t testing.TB, name, dir, addr string) *testAgent {
	t.Helper()
	return startAgentWith(t, name, dir, addr, nil)
}

// startAgentWith is startAgent with the agent's handler passed through
// wrap (nil: served as it is).
func startAgentWith(t testing.TB, name, dir, addr string, wrap func(http.Handler) http.Handler) *testAgent {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	// The port of a restarted agent may linger briefly.
	testenv.Eventually(t, time.Minute, func() bool { ln, err = net.Listen("tcp", addr); return err == nil }, "listen on %s", addr)
	// The start timeout only bounds a broken activation; no test relies on
	// it expiring, so it is generous for a loaded machine.
	a, err := agent.New(agent.Config{StateDir: dir, Token: []byte(testToken), StopGrace: 2 * time.Second, StartTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ta := &testAgent{name: name, dir: dir, addr: ln.Addr().String(), a: a, srv: &http.Server{Handler: h}, done: make(chan struct{})}
	go func() { ta.srv.Serve(ln); close(ta.done) }()
	return ta
}

// stop shuts the server down; with kill the processes are stopped too,
// otherwise they keep running for a restarted agent to adopt.
func (ta *testAgent) stop(kill bool) {
	ta.srv.Close()
	<-ta.done
	ta.a.Close(kill)
}

func (ta *testAgent) url() string { return "http://" + ta.addr }

type cluster struct {
	t      *testing.T
	agents map[string]*testAgent
	infra  model.Infrastructure
	store  *deployer.Store
	be     *deployer.AgentBackend
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return newClusterWith(t, n, nil)
}

// newClusterWith is newCluster with every agent's handler passed through
// wrap (see startAgentWith).
func newClusterWith(t *testing.T, n int, wrap func(http.Handler) http.Handler) *cluster {
	t.Helper()
	needTestsvc(t)
	c := &cluster{t: t, agents: map[string]*testAgent{}, infra: model.Infrastructure{}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("t%d", i)
		ta := startAgentWith(t, name, t.TempDir(), "", wrap)
		c.agents[name] = ta
		c.infra[name] = &model.Target{Name: name, Properties: map[string]any{"agentURL": ta.url(), "hostname": "127.0.0.1"}, Extra: map[string]any{}}
	}
	t.Cleanup(func() {
		for _, ta := range c.agents {
			ta.stop(true)
		}
	})
	st, err := deployer.OpenStore(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	c.store = st
	c.be = &deployer.AgentBackend{Token: testToken, Parallel: 4, Store: st, TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	return c
}

// svc builds a process service of the test binary in the given role.
func svc(t testing.TB, name, role string, deps, conns []string, stateful bool) *model.Service {
	port := testenv.Port(t)
	s := &model.Service{Name: name, Type: "process", DependsOn: deps, ConnectsTo: conns,
		HasDependsOn: deps != nil, HasConnectsTo: conns != nil,
		Attrs: map[string]any{
			"pkg":         testsvc,
			"args":        []any{role},
			"port":        json.Number(strconv.Itoa(port)),
			"healthCheck": fmt.Sprintf("http://127.0.0.1:%d/health", port),
		}}
	if stateful {
		s.Attrs["deployState"] = true
	}
	return s
}

func dist(pairs ...string) model.Distribution {
	d := model.Distribution{}
	for i := 0; i+1 < len(pairs); i += 2 {
		d[pairs[i]] = append(d[pairs[i]], model.Mapping{Target: pairs[i+1]})
	}
	return d
}

// deploy builds, plans and executes; it returns the plan and the error.
func (c *cluster) deploy(svcs model.Services, d model.Distribution, opts deployer.PlanOptions) (*deployer.Plan, error) {
	c.t.Helper()
	man, err := deployer.BuildManifest(svcs, c.infra, d, deployer.BuildOptions{})
	if err != nil {
		c.t.Fatalf("build manifest: %v", err)
	}
	old, err := c.store.Latest()
	if err != nil {
		c.t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(old, man, opts)
	if err != nil {
		c.t.Fatalf("plan: %v", err)
	}
	var mu sync.Mutex
	var log []string
	_, err = deployer.Deploy(context.Background(), c.be, c.store, plan, func(e deployer.StepEvent) {
		mu.Lock()
		log = append(log, e.String())
		mu.Unlock()
	})
	c.t.Logf("plan:\n%sprogress:\n%s", plan, strings.Join(log, "\n"))
	return plan, err
}

func (c *cluster) mustDeploy(svcs model.Services, d model.Distribution) *deployer.Plan {
	c.t.Helper()
	p, err := c.deploy(svcs, d, deployer.PlanOptions{})
	if err != nil {
		c.t.Fatalf("deploy: %v", err)
	}
	return p
}

// httpGet returns the body of a GET on a service port.
func httpGet(t testing.TB, s *model.Service, path string) (string, error) {
	port, _ := model.ScalarText(s.Attrs["port"])
	cl := http.Client{Timeout: time.Minute} // a bound for a hung service, not a speed test
	resp, err := cl.Get("http://127.0.0.1:" + port + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b), nil
}

func httpPut(t testing.TB, s *model.Service, path, body string) {
	t.Helper()
	port, _ := model.ScalarText(s.Attrs["port"])
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:"+port+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT %s: %d", path, resp.StatusCode)
	}
}

// svcPid returns the pid serving a service (from its /env endpoint).
func svcPid(t testing.TB, s *model.Service) int {
	t.Helper()
	body, err := httpGet(t, s, "/env")
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	var v struct {
		Pid int               `json:"pid"`
		Env map[string]string `json:"env"`
	}
	json.Unmarshal([]byte(body), &v)
	return v.Pid
}

func svcEnv(t testing.TB, s *model.Service) map[string]string {
	t.Helper()
	body, err := httpGet(t, s, "/env")
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	var v struct {
		Env map[string]string `json:"env"`
	}
	json.Unmarshal([]byte(body), &v)
	return v.Env
}

// processes lists the live processes started by the cluster's agents (their
// executable is in an agent's artifact store) as "service@target", sorted.
func (c *cluster) processes() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		ours := false
		for _, ta := range c.agents {
			if strings.HasPrefix(exe, ta.dir+"/") {
				ours = true
			}
		}
		if !ours {
			continue
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		var svcName, target string
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "DYDISNIX_SERVICE="); ok {
				svcName = v
			}
			if v, ok := strings.CutPrefix(kv, "DYDISNIX_TARGET="); ok {
				target = v
			}
		}
		out = append(out, svcName+"@"+target)
	}
	sort.Strings(out)
	return out
}
