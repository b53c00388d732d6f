package rollout

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

const testToken = "rollout-test-token-0123456789"

// testAgent is a real dydisnix-agent served in-process on loopback: over
// plain HTTP, or (startTLSAgent) over mutual TLS with a certificate of
// fleet naming its hostname.
type testAgent struct {
	a   *agent.Agent
	url string
}

// insecure reaches agents over plain HTTP (the tests not about TLS).
var insecure = &deployer.AgentTLS{InsecureHTTP: true}

func startAgent(t *testing.T, _ bool) *testAgent {
	t.Helper()
	return serveAgent(t, nil)
}

// startTLSAgent serves an agent with fleet's certificate of hostname,
// accepting only the fleet's coordinators.
func startTLSAgent(t *testing.T, fleet testenv.Fleet, hostname string) *testAgent {
	t.Helper()
	args := fleet.AgentArgs(hostname)
	cfg, err := fleettls.ServerConfig(args[1], args[3], args[5])
	if err != nil {
		t.Fatal(err)
	}
	return serveAgent(t, cfg)
}

func serveAgent(t *testing.T, cfg *tls.Config) *testAgent {
	t.Helper()
	return serveAgentVia(t, cfg, nil)
}

// serveAgentVia is serveAgent with the agent's handler wrapped by wrap
// (when not nil).
func serveAgentVia(t *testing.T, cfg *tls.Config, wrap func(*agent.Agent, http.Handler) http.Handler) *testAgent {
	t.Helper()
	dir := t.TempDir()
	a, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte(testToken), StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	if wrap != nil {
		h = wrap(a, h)
	}
	srv := httptest.NewUnstartedServer(h)
	if cfg != nil {
		srv.TLS = cfg
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	return &testAgent{a: a, url: srv.URL}
}

// coordinatorTLS is how a coordinator with fleet's certificate reaches
// the agents (as --agent-ca-file, --tls-cert, --tls-key).
func coordinatorTLS(t *testing.T, fleet testenv.Fleet) *deployer.AgentTLS {
	t.Helper()
	args := fleet.CoordinatorArgs()
	cfg, err := fleettls.ClientConfig(args[1], args[3], args[5])
	if err != nil {
		t.Fatal(err)
	}
	return &deployer.AgentTLS{Config: cfg}
}

func (a *testAgent) running() []string {
	var out []string
	for _, m := range a.a.Profile(context.Background()).Services {
		out = append(out, m.Service.Name)
	}
	slices.Sort(out)
	return out
}

func agentsInfra(agents map[string]*testAgent) model.Infrastructure {
	infra := model.Infrastructure{}
	for name, a := range agents {
		infra[name] = &model.Target{Name: name, Properties: map[string]any{"hostname": name, "agentURL": a.url}}
	}
	return infra
}

// testModels writes a services model with one stateful process service
// "a" and a policy keeping stateful services where they ran, the rest
// round robin.
func testModels(t *testing.T, dir string) Models {
	t.Helper()
	testenv.WriteExecutable(t, filepath.Join(dir, "svc.sh"), "#!/bin/sh\nexec sleep 600\n")
	svc := writeFile(t, dir, "services.json", `{"a": {"name": "a", "type": "process", "pkg": "svc.sh", "stateful": true}}`)
	qos := writeFile(t, dir, "qos.yaml", "steps:\n  - filter: mapStatefulToPrevious\n  - filter: divideRoundRobin\n")
	return Models{Services: svc, QoS: qos}
}

func applyOnce(t *testing.T, cfg Config, infra model.Infrastructure) *Result {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx, infra, Request{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReconstructBeforePolicy: with Reconstruct, what the targets report is
// merged into the previous manifest before the policy runs, so the policy's
// previous distribution is what really runs and a healthy system is not
// planned to move (dydisnix-env --reconstruct with a lost state dir).
func TestReconstructBeforePolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t1, t2 := startAgent(t, false), startAgent(t, false)
	m := testModels(t, dir)
	// a coordinator deploys a onto t2 (the only target it sees)...
	applyOnce(t, Config{Models: m, StateDir: filepath.Join(dir, "first"), Token: testToken, Agents: insecure},
		agentsInfra(map[string]*testAgent{"t2": t2}))
	if got := t2.running(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("t2 runs %v", got)
	}
	// ...and a second one, without its state, reconstructs: round robin
	// would put a on t1, the reconstructed previous keeps it on t2.
	res := applyOnce(t, Config{Models: m, StateDir: filepath.Join(dir, "second"), Token: testToken, Reconstruct: true, Agents: insecure},
		agentsInfra(map[string]*testAgent{"t1": t1, "t2": t2}))
	if len(res.Moved) != 0 || len(t1.running()) != 0 || !slices.Equal(t2.running(), []string{"a"}) {
		t.Fatalf("moved %v; t1 runs %v, t2 runs %v; want a left on t2", res.Moved, t1.running(), t2.running())
	}
}

// TestAgentsOverMutualTLS: a pass reaches an agent whose certificate the
// fleet CA signed for the target's hostname, and refuses (before sending
// anything) an agent URL over plain HTTP unless told --insecure-http.
func TestAgentsOverMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fleet := testenv.NewFleet(t, "t1")
	t1 := startTLSAgent(t, fleet, "t1")
	m := testModels(t, dir)
	applyOnce(t, Config{Models: m, StateDir: filepath.Join(dir, "trusting"), Token: testToken, Agents: coordinatorTLS(t, fleet)},
		agentsInfra(map[string]*testAgent{"t1": t1}))
	if got := t1.running(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("t1 runs %v over TLS", got)
	}
	plain := startAgent(t, false)
	for _, agents := range []*deployer.AgentTLS{nil, coordinatorTLS(t, fleet)} {
		_, err := applyErr(t, Config{Models: m, StateDir: t.TempDir(), Token: testToken, Agents: agents},
			agentsInfra(map[string]*testAgent{"t2": plain}))
		if err == nil || !strings.Contains(err.Error(), "t2") {
			t.Errorf("plain-HTTP agent without --insecure-http: %v, want a refusal naming t2", err)
		}
	}
	if got := plain.running(); len(got) != 0 {
		t.Errorf("the plain-HTTP agent runs %v", got)
	}
}

// TestFakeAgentGetsNothing (issue 11, finding 1): an endpoint announced
// for a target (zzz, or machine1 with the attacker's endpoint) whose
// certificate is of another CA, or of the fleet CA but for another
// hostname, never receives a request: no bearer token, no augmented
// property. The pass fails with an error naming the target.
func TestFakeAgentGetsNothing(t *testing.T) {
	t.Parallel()
	fleet := testenv.NewFleet(t, "attacker")
	other := testenv.NewFleet(t, "zzz", "machine1")
	cases := []struct {
		name, target, certOf string
		fleet                testenv.Fleet
	}{
		{"another CA, own name", "zzz", "zzz", other},
		{"another CA, claims machine1", "machine1", "machine1", other},
		{"fleet CA, another hostname", "machine1", "attacker", fleet},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := c.fleet.AgentArgs(c.certOf)
			cert, err := tls.LoadX509KeyPair(args[1], args[3])
			if err != nil {
				t.Fatal(err)
			}
			var got atomic.Int32
			fake := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1) // any request at all: token, body, anything
				http.Error(w, "fake", http.StatusTeapot)
			}))
			fake.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			fake.StartTLS()
			t.Cleanup(fake.Close)
			infra := model.Infrastructure{c.target: {Name: c.target,
				Properties: map[string]any{"hostname": c.target, "agentURL": fake.URL, "dbPassword": "s3cret"}}}
			_, err = applyErr(t, Config{Models: testModels(t, dir), StateDir: filepath.Join(dir, "state"), Token: testToken,
				Agents: coordinatorTLS(t, fleet)}, infra)
			if err == nil || !strings.Contains(err.Error(), c.target) {
				t.Errorf("pass with a fake agent for %s: %v, want an error naming it", c.target, err)
			}
			if n := got.Load(); n != 0 {
				t.Errorf("the fake agent received %d requests", n)
			}
		})
	}
}

// applyErr runs one pass with cfg on infra and returns its error.
func applyErr(t *testing.T, cfg Config, infra model.Infrastructure) (*Result, error) {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p.Apply(context.Background(), infra, Request{})
}

// TestRequestProgress: a pass reports its step events to Config.Progress
// and to the request's Progress, both with the transition's length.
func TestRequestProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	infra := agentsInfra(map[string]*testAgent{"t1": startAgent(t, false)})
	var fromConfig, fromRequest []StepProgress
	p, err := New(Config{Models: testModels(t, dir), StateDir: filepath.Join(dir, "state"), Token: testToken, Agents: insecure,
		Progress: func(e deployer.StepEvent, of int) { fromConfig = append(fromConfig, Progress(e, of)) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx, infra, Request{Progress: func(e deployer.StepEvent, of int) { fromRequest = append(fromRequest, Progress(e, of)) }})
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.Transition.Steps)
	if len(fromRequest) != 2*n || !slices.Equal(fromConfig, fromRequest) {
		t.Fatalf("request progress %v, config progress %v; want a start and an end for each of %d steps", fromRequest, fromConfig, n)
	}
	i := slices.IndexFunc(fromRequest, func(p StepProgress) bool { return p.Op == "activate" && p.Phase == PhaseDone })
	if i < 0 || fromRequest[i].Of != n || fromRequest[i].Service != "a" || fromRequest[i].Target != "t1" {
		t.Errorf("activation progress: %+v", fromRequest)
	}
}

// TestSnapshotTimes: every stateful service of the newest generation is
// listed with the time its newest snapshot was stored (zero: none), and a
// newer generation's services replace the older one's.
func TestSnapshotTimes(t *testing.T) {
	t.Parallel()
	p, err := New(Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	save := func(stateful ...string) {
		t.Helper()
		man := &model.Manifest{Version: model.ManifestVersion, Services: map[string]model.ManifestService{},
			Infrastructure: model.Infrastructure{"t1": &model.Target{Name: "t1", Properties: map[string]any{}, Extra: map[string]any{}}}}
		for _, name := range stateful {
			man.Services["k-"+name] = model.ManifestService{Name: name, Type: "process", DeployState: true}
			sm := model.ServiceMapping{Service: "k-" + name, Target: "t1", Container: "process"}
			man.Mappings = append(man.Mappings, sm)
			man.Snapshots = append(man.Snapshots, sm)
		}
		if _, err := p.Store().SaveManifest(man); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := p.SnapshotTimes(); err != nil || len(got) != 0 {
		t.Fatalf("nothing deployed: %v, %v", got, err)
	}
	save("db", "kv")
	info, err := p.Store().PutSnapshot("db", "", strings.NewReader("state"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p.Store().SnapshotPath("db", info.Digest))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.SnapshotTimes()
	if err != nil || len(got) != 2 || !got["db"].Equal(fi.ModTime()) || !got["kv"].IsZero() {
		t.Fatalf("SnapshotTimes = %v, %v; want db at %v and kv without one", got, err, fi.ModTime())
	}
	save("kv")
	if got, err := p.SnapshotTimes(); err != nil || len(got) != 1 || !got["kv"].IsZero() {
		t.Fatalf("after a newer generation: %v, %v; want kv only", got, err)
	}
	// The newest generation deleted and written again under its number:
	// the kept copy is not used.
	if err := os.Remove(p.Store().ManifestPath(2)); err != nil {
		t.Fatal(err)
	}
	save("db", "kv", "queue")
	if got, err := p.SnapshotTimes(); err != nil || len(got) != 3 {
		t.Fatalf("after generation 2 was written again: %v, %v; want db, kv and queue", got, err)
	}
}
