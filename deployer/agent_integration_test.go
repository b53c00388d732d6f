package deployer_test

import (
	"context"
	"encoding/json"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/reconstruct"
)

// exampleSystem is the example system of the tests: a stateful key-value
// store, a web front end that depends on it, and two peers that connectsTo
// each other (a cycle).
func exampleSystem(t *testing.T) model.Services {
	return model.Services{
		"kv":    svc(t, "kv", "kv", nil, nil, true),
		"web":   svc(t, "web", "web", []string{"kv"}, nil, false),
		"peerA": svc(t, "peerA", "peer", nil, []string{"peerB"}, false),
		"peerB": svc(t, "peerB", "peer", nil, []string{"peerA"}, false),
	}
}

func countKind(p *deployer.Plan, k deployer.StepKind) map[string]int {
	out := map[string]int{}
	for _, s := range p.Steps {
		if s.Kind == k {
			out[s.Service+"@"+s.Target]++
		}
	}
	return out
}

func TestAgentFreshDeployAndIdenticalRedeploy(t *testing.T) {
	c := newCluster(t, 2)
	svcs := exampleSystem(t)
	d := dist("kv", "t1", "web", "t2", "peerA", "t1", "peerB", "t2")
	c.mustDeploy(svcs, d)
	if got, want := c.processes(), []string{"kv@t1", "peerA@t1", "peerB@t2", "web@t2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("processes = %v, want %v", got, want)
	}
	if _, err := httpGet(t, svcs["web"], "/health"); err != nil {
		t.Fatalf("web cannot reach kv through its DYDISNIX_DEP_* environment: %v", err)
	}
	env := svcEnv(t, svcs["web"])
	kvPort, _ := model.ScalarText(svcs["kv"].Attrs["port"])
	for k, want := range map[string]string{"DYDISNIX_SERVICE": "web", "DYDISNIX_TARGET": "t2", "DYDISNIX_DEP_KV_PORT": kvPort, "DYDISNIX_DEP_KV_TARGET": "127.0.0.1"} {
		if env[k] != want {
			t.Errorf("web env %s = %q, want %q", k, env[k], want)
		}
	}
	if env["DYDISNIX_STATE_DIR"] == "" || env["DYDISNIX_CONTEXT"] == "" || env["DYDISNIX_DEP_PEERB_PORT"] != "" {
		t.Errorf("web env: %v", env)
	}
	if pe := svcEnv(t, svcs["peerA"]); pe["DYDISNIX_DEP_PEERB_TARGET"] == "" {
		t.Errorf("peerA lacks its connectsTo peer's environment: %v", pe)
	}
	gens, _ := c.store.Generations()
	// Identical redeployment: no remote activation, no new generation.
	p := c.mustDeploy(svcs, d)
	if !p.Empty() {
		t.Errorf("identical redeploy planned work:\n%s", p)
	}
	gens2, _ := c.store.Generations()
	if len(gens2) != len(gens) {
		t.Errorf("identical redeploy created a generation: %v → %v", gens, gens2)
	}
}

func TestAgentMoveStatefulServiceMigratesState(t *testing.T) {
	c := newCluster(t, 3)
	svcs := exampleSystem(t)
	c.mustDeploy(svcs, dist("kv", "t1", "web", "t2", "peerA", "t1", "peerB", "t2"))
	for i, v := range []string{"alpha", "beta", "gamma"} {
		httpPut(t, svcs["kv"], "/kv/k"+string(rune('0'+i)), v)
	}
	sum, err := httpGet(t, svcs["kv"], "/checksum")
	if err != nil {
		t.Fatal(err)
	}
	pidPeerA, pidPeerB := svcPid(t, svcs["peerA"]), svcPid(t, svcs["peerB"])
	p := c.mustDeploy(svcs, dist("kv", "t3", "web", "t2", "peerA", "t1", "peerB", "t2"))
	// Only kv and its dependent web are reactivated; the peers are untouched.
	if got, want := countKind(p, deployer.StepActivate), map[string]int{"kv@t3": 1, "web@t2": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("activations = %v, want %v", got, want)
	}
	if got, want := countKind(p, deployer.StepDeactivate), map[string]int{"kv@t1": 1, "web@t2": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("deactivations = %v, want %v", got, want)
	}
	if n := len(countKind(p, deployer.StepRestore)); n != 1 {
		t.Errorf("restore steps = %d, want 1", n)
	}
	sum2, err := httpGet(t, svcs["kv"], "/checksum")
	if err != nil {
		t.Fatal(err)
	}
	if sum != sum2 {
		t.Fatalf("state checksum changed by the move: %s → %s", sum, sum2)
	}
	if v, _ := httpGet(t, svcs["kv"], "/kv/k1"); v != "beta" {
		t.Errorf("kv/k1 = %q after move", v)
	}
	if svcPid(t, svcs["peerA"]) != pidPeerA || svcPid(t, svcs["peerB"]) != pidPeerB {
		t.Error("connectsTo peers were restarted by an unrelated move")
	}
	if got, want := c.processes(), []string{"kv@t3", "peerA@t1", "peerB@t2", "web@t2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("processes = %v, want %v", got, want)
	}
	// The old state stays on t1 (no --delete-state) and the snapshot went through the store.
	if _, err := os.Stat(c.agents["t1"].dir + "/state/kv/data.json"); err != nil {
		t.Errorf("old state deleted without --delete-state: %v", err)
	}
	if _, ok, _ := c.store.LatestSnapshot("kv"); !ok {
		t.Error("the transferred snapshot is not in the coordinator's store")
	}
	// Move back with --delete-state: the copy on t3 is removed.
	c.deploy(svcs, dist("kv", "t1", "web", "t2", "peerA", "t1", "peerB", "t2"), deployer.PlanOptions{DeleteState: true})
	if sum3, _ := httpGet(t, svcs["kv"], "/checksum"); sum3 != sum {
		t.Errorf("state checksum after moving back: %s, want %s", sum3, sum)
	}
	if _, err := os.Stat(c.agents["t3"].dir + "/state/kv"); !os.IsNotExist(err) {
		t.Errorf("--delete-state kept the old state: %v", err)
	}
}

func TestAgentActivationFailureRollsBack(t *testing.T) {
	c := newCluster(t, 2)
	svcs := exampleSystem(t)
	d := dist("kv", "t1", "web", "t2", "peerA", "t1", "peerB", "t2")
	c.mustDeploy(svcs, d)
	httpPut(t, svcs["kv"], "/kv/a", "1")
	sum, _ := httpGet(t, svcs["kv"], "/checksum")
	before := c.processes()
	gens, _ := c.store.Generations()

	// New configuration: kv moves to t2 and a service that crashes at start depends on it.
	svcs2 := model.Services{}
	for k, v := range svcs {
		svcs2[k] = v
	}
	svcs2["bad"] = svc(t, "bad", "fail", []string{"kv"}, nil, false)
	_, err := c.deploy(svcs2, dist("kv", "t2", "web", "t2", "peerA", "t1", "peerB", "t2", "bad", "t1"), deployer.PlanOptions{})
	if err == nil {
		t.Fatal("deploy with a failing service succeeded")
	}
	var se *deployer.StepError
	if !asStepError(err, &se) || se.Step.Service != "bad" || se.Step.Target != "t1" || se.Step.Kind != deployer.StepActivate {
		t.Fatalf("error does not name service, target and step: %v", err)
	}
	if !strings.Contains(err.Error(), "bad") || !strings.Contains(err.Error(), "t1") || se.RollbackErr != nil {
		t.Fatalf("error: %v", err)
	}
	if got := c.processes(); !reflect.DeepEqual(got, before) {
		t.Fatalf("after rollback processes = %v, want %v (no orphans, previous configuration)", got, before)
	}
	if s, _ := httpGet(t, svcs["kv"], "/checksum"); s != sum {
		t.Errorf("kv state after rollback: %s, want %s", s, sum)
	}
	if _, err := httpGet(t, svcs["web"], "/health"); err != nil {
		t.Errorf("web unhealthy after rollback: %v", err)
	}
	if g, _ := c.store.Generations(); len(g) != len(gens) {
		t.Errorf("failed deploy created a generation")
	}
	// Locks were released: a new deployment works.
	c.mustDeploy(svcs, d)
}

func asStepError(err error, se **deployer.StepError) bool {
	e, ok := err.(*deployer.StepError)
	if ok {
		*se = e
	}
	return ok
}

func TestAgentUnauthorized(t *testing.T) {
	c := newCluster(t, 1)
	u := c.agents["t1"].url()
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/v1/health", ""},
		{"GET", "/v1/profile", "Bearer wrong"},
		{"POST", "/v1/activate", "Bearer " + testToken + "x"},
		{"PUT", "/v1/artifacts/00", "Basic " + testToken},
		{"GET", "/no/such/path", ""},
		{"POST", "/v1/lock", "bearer " + testToken},
	} {
		req, _ := http.NewRequest(tc.method, u+tc.path, strings.NewReader("{}"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with %q: %d, want 401", tc.method, tc.path, tc.auth, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", u+"/v1/health", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("authorised health: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestAgentReconstructAfterLosingCoordinatorState(t *testing.T) {
	c := newCluster(t, 2)
	svcs := exampleSystem(t)
	c.mustDeploy(svcs, dist("kv", "t1", "web", "t2", "peerA", "t1", "peerB", "t2"))
	deployed, _ := c.store.Latest()

	// The coordinator loses its state.
	st, err := deployer.OpenStore(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	c.store, c.be.Store = st, st
	res := reconstruct.FromTargets(context.Background(), c.infra, "", reconstruct.Agents{Backend: c.be})
	if len(res.Unreachable) > 0 {
		t.Fatalf("unreachable: %v", res.Unreachable)
	}
	if !reflect.DeepEqual(res.Manifest.Mappings, deployed.Mappings) || len(res.Manifest.Services) != len(deployed.Services) {
		t.Fatalf("reconstructed mappings %v, want %v", res.Manifest.Mappings, deployed.Mappings)
	}
	if _, err := st.SaveManifest(res.Manifest); err != nil {
		t.Fatal(err)
	}
	// A redeploy with peerA moved converges: nothing collides, no duplicates.
	p := c.mustDeploy(svcs, dist("kv", "t1", "web", "t2", "peerA", "t2", "peerB", "t2"))
	if got, want := countKind(p, deployer.StepActivate), map[string]int{"peerA@t2": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("activations after reconstruct = %v, want %v", got, want)
	}
	if got, want := c.processes(), []string{"kv@t1", "peerA@t2", "peerB@t2", "web@t2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("processes = %v, want %v", got, want)
	}
}

func TestAgentRestartKeepsItsServices(t *testing.T) {
	c := newCluster(t, 1)
	svcs := model.Services{"kv": svc(t, "kv", "kv", nil, nil, true)}
	c.mustDeploy(svcs, dist("kv", "t1"))
	pid := svcPid(t, svcs["kv"])

	ta := c.agents["t1"]
	ta.stop(false) // the agent goes away, its processes stay
	ta2 := startAgent(t, "t1", ta.dir, ta.addr)
	c.agents["t1"] = ta2
	cl, _ := c.be.Client("t1", &model.Manifest{Infrastructure: c.infra})
	prof, err := cl.Profile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(prof.Services) != 1 || prof.Services[0].Pid != pid || !prof.Services[0].Running {
		t.Fatalf("restarted agent profile = %+v, want kv running as pid %d", prof.Services, pid)
	}
	// It still supervises the adopted process: kill it, it comes back.
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
	testenv.Eventually(t, time.Minute, func() bool {
		got, err := httpGet(t, svcs["kv"], "/health")
		return err == nil && strings.TrimSpace(got) == "ok" && svcPid(t, svcs["kv"]) != pid
	}, "adopted process restarted after it died")
	// And a redeploy of the same configuration is a no-op.
	if p := c.mustDeploy(svcs, dist("kv", "t1")); !p.Empty() {
		t.Errorf("redeploy after agent restart planned work:\n%s", p)
	}
}

func TestAgentCrashedTargetRestoredFromStore(t *testing.T) {
	c := newCluster(t, 2)
	svcs := model.Services{"kv": svc(t, "kv", "kv", nil, nil, true), "web": svc(t, "web", "web", []string{"kv"}, nil, false)}
	c.mustDeploy(svcs, dist("kv", "t1", "web", "t2"))
	httpPut(t, svcs["kv"], "/kv/x", "42")
	sum, _ := httpGet(t, svcs["kv"], "/checksum")
	latest, _ := c.store.Latest()
	if _, err := c.be.SnapshotAll(context.Background(), latest, c.store, nil); err != nil {
		t.Fatal(err)
	}
	// t1 crashes: the agent and its processes are gone.
	c.agents["t1"].stop(true)
	infra2 := model.Infrastructure{"t2": c.infra["t2"]}
	man, err := deployer.BuildManifest(svcs, infra2, dist("kv", "t2", "web", "t2"), deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// t1 refuses connections at once: the timeout only bounds the probe of
	// t2, which must not be taken for unreachable on a loaded machine.
	unreach := c.be.Unreachable(context.Background(), latest, man, time.Minute)
	if !unreach["t1"] || unreach["t2"] {
		t.Fatalf("unreachable = %v", unreach)
	}
	plan, err := deployer.PlanTransition(latest, man, deployer.PlanOptions{Unreachable: unreach})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(countKind(plan, deployer.StepRestoreStore)); n != 1 {
		t.Fatalf("plan has %d restore-from-store steps:\n%s", n, plan)
	}
	if _, err := deployer.Deploy(context.Background(), c.be, c.store, plan, nil); err != nil {
		t.Fatal(err)
	}
	if s, _ := httpGet(t, svcs["kv"], "/checksum"); s != sum {
		t.Fatalf("restored state %s, want %s", s, sum)
	}
}

func TestAgentDrainWaitsForStateMigration(t *testing.T) {
	c := newCluster(t, 2)
	svcs := model.Services{"kv": svc(t, "kv", "kv", nil, nil, true), "web": svc(t, "web", "web", []string{"kv"}, nil, false)}
	c.mustDeploy(svcs, dist("kv", "t1", "web", "t2"))
	httpPut(t, svcs["kv"], "/kv/d", "drained")
	sum, _ := httpGet(t, svcs["kv"], "/checksum")

	drained := make(chan bool, 1)
	go func() { drained <- c.agents["t1"].a.Drain(context.Background(), 30*time.Second) }()
	cl, _ := c.be.Client("t1", &model.Manifest{Infrastructure: c.infra})
	testenv.Eventually(t, time.Minute, func() bool {
		h, err := cl.Health(context.Background())
		return err == nil && h.Draining && h.Status == "draining"
	}, "agent reports draining")
	// The coordinator moves everything away: t1 is no longer in the
	// infrastructure, but the previous manifest knows how to reach it.
	c.infra = model.Infrastructure{"t2": c.infra["t2"]}
	p := c.mustDeploy(svcs, dist("kv", "t2", "web", "t2"))
	if n := len(countKind(p, deployer.StepSnapshot)); n != 1 {
		t.Errorf("snapshot steps = %d, want 1 (state migrated from the draining machine)", n)
	}
	// The transition's unlock wakes the drain up: it ends now (a hang here
	// is the failure).
	if moved := <-drained; !moved {
		t.Error("drain ended without the services moved away")
	}
	if s, _ := httpGet(t, svcs["kv"], "/checksum"); s != sum {
		t.Fatalf("state after drain: %s, want %s", s, sum)
	}
	if got, want := c.processes(), []string{"kv@t2", "web@t2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("processes = %v, want %v", got, want)
	}
}

// TestReconcileReturningMachine: a machine drops off, its service is
// placed elsewhere, and it comes back still carrying the old service:
// merging what the targets report into the previous manifest makes the
// next plan deactivate the stale copy, so no duplicate remains.
func TestReconcileReturningMachine(t *testing.T) {
	c := newCluster(t, 2)
	svcs := model.Services{"x": {Name: "x", Type: "echo", Attrs: map[string]any{}}}
	c.mustDeploy(svcs, dist("x", "t1"))
	// t1 is unreachable for a while: x is placed on t2 without contacting t1.
	ta := c.agents["t1"]
	ta.stop(false)
	p, err := c.deploy(svcs, dist("x", "t2"), deployer.PlanOptions{Unreachable: map[string]bool{"t1": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes) == 0 {
		t.Error("no note about the forgotten copy")
	}
	// t1 comes back with x still in its profile.
	c.agents["t1"] = startAgent(t, "t1", ta.dir, ta.addr)
	found := reconstruct.FromTargets(context.Background(), c.infra, "", reconstruct.Agents{Backend: c.be})
	old, _ := c.store.Latest()
	merged := reconstruct.Merge(old, found.Manifest)
	man, _ := deployer.BuildManifest(svcs, c.infra, dist("x", "t2"), deployer.BuildOptions{})
	plan, err := deployer.PlanTransition(merged, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := countKind(plan, deployer.StepDeactivate), map[string]int{"x@t1": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("deactivations = %v, want %v\n%s", got, want, plan)
	}
	if len(countKind(plan, deployer.StepActivate)) != 0 {
		t.Errorf("x re-activated on t2:\n%s", plan)
	}
	if _, err := deployer.Deploy(context.Background(), c.be, c.store, plan, nil); err != nil {
		t.Fatal(err)
	}
	res := reconstruct.FromTargets(context.Background(), c.infra, "", reconstruct.Agents{Backend: c.be})
	if len(res.Manifest.Mappings) != 1 || res.Manifest.Mappings[0].Target != "t2" {
		t.Fatalf("after reconciliation: %v", res.Manifest.Mappings)
	}
}

// TestAgentConnectsToPeerMoveUpdatesContext: when a connectsTo peer moves,
// its client is not restarted, but its DYDISNIX_CONTEXT file names the
// peer's new place at once (and its environment does from the next restart).
func TestAgentConnectsToPeerMoveUpdatesContext(t *testing.T) {
	c := newCluster(t, 2)
	c.infra["t2"].Properties["agentURL"] = strings.Replace(c.agents["t2"].url(), "127.0.0.1", "localhost", 1)
	svcs := model.Services{
		"peerA": svc(t, "peerA", "peer", nil, []string{"peerB"}, false),
		"peerB": svc(t, "peerB", "peer", nil, []string{"peerA"}, false),
	}
	c.mustDeploy(svcs, dist("peerA", "t1", "peerB", "t1"))
	pid := svcPid(t, svcs["peerA"])
	p := c.mustDeploy(svcs, dist("peerA", "t1", "peerB", "t2"))
	if got := countKind(p, deployer.StepUpdateContext); !reflect.DeepEqual(got, map[string]int{"peerA@t1": 1}) {
		t.Errorf("context updates = %v\n%s", got, p)
	}
	if svcPid(t, svcs["peerA"]) != pid {
		t.Fatal("peerA restarted because its connectsTo peer moved")
	}
	file := svcEnv(t, svcs["peerA"])["DYDISNIX_CONTEXT"]
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ConnectsTo map[string]struct {
			Targets []struct{ Target, Host string } `json:"targets"`
		} `json:"connectsTo"`
	}
	json.Unmarshal(b, &doc)
	if ts := doc.ConnectsTo["peerB"].Targets; len(ts) != 1 || ts[0].Target != "t2" || ts[0].Host != "localhost" {
		t.Errorf("context file names peerB at %+v, want t2/localhost", ts)
	}
}
