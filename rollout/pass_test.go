package rollout

import (
	"context"
	"encoding/pem"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/model"
)

const testToken = "rollout-test-token-0123456789"

// testAgent is a real dydisnix-agent served in-process on loopback (over
// TLS with tls) with its test certificate's PEM in caFile.
type testAgent struct {
	a      *agent.Agent
	url    string
	caFile string
}

func startAgent(t *testing.T, tls bool) *testAgent {
	t.Helper()
	dir := t.TempDir()
	a, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte(testToken), StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Handler())
	ta := &testAgent{a: a}
	if tls {
		srv.StartTLS()
		ta.caFile = filepath.Join(dir, "ca.pem")
		pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(ta.caFile, pemCert, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		srv.Start()
	}
	ta.url = srv.URL
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	return ta
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
	applyOnce(t, Config{Models: m, StateDir: filepath.Join(dir, "first"), Token: testToken},
		agentsInfra(map[string]*testAgent{"t2": t2}))
	if got := t2.running(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("t2 runs %v", got)
	}
	// ...and a second one, without its state, reconstructs: round robin
	// would put a on t1, the reconstructed previous keeps it on t2.
	res := applyOnce(t, Config{Models: m, StateDir: filepath.Join(dir, "second"), Token: testToken, Reconstruct: true},
		agentsInfra(map[string]*testAgent{"t1": t1, "t2": t2}))
	if len(res.Moved) != 0 || len(t1.running()) != 0 || !slices.Equal(t2.running(), []string{"a"}) {
		t.Fatalf("moved %v; t1 runs %v, t2 runs %v; want a left on t2", res.Moved, t1.running(), t2.running())
	}
}

// TestAgentsOverTLSWithPrivateCA: a pass reaches agents whose certificate
// is signed by a private CA given as CAFile (dydisnix-self-adapt and
// dydisnix-env --agent-ca-file), and fails without it.
func TestAgentsOverTLSWithPrivateCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t1 := startAgent(t, true)
	m := testModels(t, dir)
	infra := agentsInfra(map[string]*testAgent{"t1": t1})
	p, err := New(Config{Models: m, StateDir: filepath.Join(dir, "untrusting"), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(context.Background(), infra, Request{}); err == nil {
		t.Fatal("deployed to an agent whose certificate nobody trusts")
	}
	applyOnce(t, Config{Models: m, StateDir: filepath.Join(dir, "trusting"), Token: testToken, CAFile: t1.caFile}, infra)
	if got := t1.running(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("t1 runs %v over TLS", got)
	}
}

// TestRequestProgress: a pass reports its step events to Config.Progress
// and to the request's Progress, both with the transition's length.
func TestRequestProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	infra := agentsInfra(map[string]*testAgent{"t1": startAgent(t, false)})
	var fromConfig, fromRequest []StepProgress
	p, err := New(Config{Models: testModels(t, dir), StateDir: filepath.Join(dir, "state"), Token: testToken,
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
}
