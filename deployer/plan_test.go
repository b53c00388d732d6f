package deployer

import (
	"encoding/json"
	"flag"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

// echoSvc is a service of a type the planner treats opaquely (no artifact).
func echoSvc(name string, deps, conns []string, stateful bool) *model.Service {
	s := &model.Service{Name: name, Type: "echo", DependsOn: deps, ConnectsTo: conns, Attrs: map[string]any{"pkg": "/pkgs/" + name}}
	if stateful {
		s.Attrs["deployState"] = true
	}
	return s
}

func infraOf(names ...string) model.Infrastructure {
	in := model.Infrastructure{}
	for _, n := range names {
		in[n] = &model.Target{Name: n, Properties: map[string]any{"agentURL": "http://" + n + ":7420"}, Extra: map[string]any{}}
	}
	return in
}

func mustBuild(t *testing.T, svcs model.Services, infra model.Infrastructure, d model.Distribution) *model.Manifest {
	t.Helper()
	m, err := BuildManifest(svcs, infra, d, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func distOf(pairs ...string) model.Distribution {
	d := model.Distribution{}
	for i := 0; i+1 < len(pairs); i += 2 {
		d[pairs[i]] = append(d[pairs[i]], model.Mapping{Target: pairs[i+1]})
	}
	return d
}

func stepOf(p *Plan, kind StepKind, service, target string) *Step {
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Kind == kind && s.Service == service && s.Target == target {
			return s
		}
	}
	return nil
}

// TestPlanWorkedExample is disnix.md §2.8: ZipcodeService moves from
// test1 to test2; StaffTracker depends on it and is reactivated; zipcodes is
// untouched; deactivation is dependents first, activation dependencies first.
func TestPlanWorkedExample(t *testing.T) {
	svcs := model.Services{
		"zipcodes":       echoSvc("zipcodes", nil, nil, true),
		"ZipcodeService": echoSvc("ZipcodeService", []string{"zipcodes"}, nil, false),
		"StaffTracker":   echoSvc("StaffTracker", []string{"ZipcodeService"}, nil, false),
	}
	infra := infraOf("test1", "test2")
	old := mustBuild(t, svcs, infra, distOf("zipcodes", "test2", "ZipcodeService", "test1", "StaffTracker", "test2"))
	new := mustBuild(t, svcs, infra, distOf("zipcodes", "test2", "ZipcodeService", "test2", "StaffTracker", "test2"))
	p, err := PlanTransition(old, new, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stepOf(p, StepActivate, "zipcodes", "test2") != nil || stepOf(p, StepDeactivate, "zipcodes", "test2") != nil {
		t.Error("zipcodes is touched")
	}
	dS := stepOf(p, StepDeactivate, "StaffTracker", "test2")
	dK := stepOf(p, StepDeactivate, "ZipcodeService", "test1")
	aK := stepOf(p, StepActivate, "ZipcodeService", "test2")
	aS := stepOf(p, StepActivate, "StaffTracker", "test2")
	if dS == nil || dK == nil || aK == nil || aS == nil {
		t.Fatalf("missing steps:\n%s", p)
	}
	if !(dS.ID < dK.ID && dK.ID < aK.ID && aK.ID < aS.ID) || !contains(dK.Deps, dS.ID) || !contains(aS.Deps, aK.ID) {
		t.Errorf("wrong order:\n%s", p)
	}
	if dS.Key == aS.Key || dK.Key != aK.Key {
		t.Error("keys: StaffTracker must get a new key (its dependency moved), ZipcodeService keeps its key")
	}
	golden(t, "plan-worked-example.golden", p.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestPlanConnectsToCycleNoReactivation(t *testing.T) {
	svcs := model.Services{
		"a": echoSvc("a", nil, []string{"b"}, false),
		"b": echoSvc("b", nil, []string{"a"}, false),
	}
	infra := infraOf("t1", "t2")
	old := mustBuild(t, svcs, infra, distOf("a", "t1", "b", "t1"))
	new := mustBuild(t, svcs, infra, distOf("a", "t1", "b", "t2"))
	p, err := PlanTransition(old, new, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stepOf(p, StepActivate, "a", "t1") != nil || stepOf(p, StepDeactivate, "a", "t1") != nil {
		t.Errorf("connectsTo peer reactivated:\n%s", p)
	}
	if s := stepOf(p, StepActivate, "b", "t2"); s == nil {
		t.Errorf("b not activated:\n%s", p)
	}
}

func TestBuildManifestErrors(t *testing.T) {
	infra := infraOf("t1")
	for _, tc := range []struct {
		name string
		svcs model.Services
		d    model.Distribution
		want string
	}{
		{"cycle", model.Services{"a": echoSvc("a", []string{"b"}, nil, false), "b": echoSvc("b", []string{"a"}, nil, false)}, distOf("a", "t1", "b", "t1"), "dependsOn cycle"},
		{"unknown service", model.Services{}, distOf("a", "t1"), `service "a" is not in the services model`},
		{"unknown target", model.Services{"a": echoSvc("a", nil, nil, false)}, distOf("a", "t9"), `target "t9"`},
		{"undistributed dependency", model.Services{"a": echoSvc("a", []string{"b"}, nil, false), "b": echoSvc("b", nil, nil, false)}, distOf("a", "t1"), "maps to no target"},
		{"process without pkg", model.Services{"a": {Name: "a", Type: "process", Attrs: map[string]any{}}}, distOf("a", "t1"), "needs pkg"},
		{"missing pkg", model.Services{"a": {Name: "a", Type: "process", Attrs: map[string]any{"pkg": "/no/such/file"}}}, distOf("a", "t1"), "no such file"},
		{"bad health check", model.Services{"a": {Name: "a", Type: "echo", Attrs: map[string]any{"healthCheck": "ftp://x"}}}, distOf("a", "t1"), "healthCheck"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildManifest(tc.svcs, infra, tc.d, BuildOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestBuildManifestPkgDirectoryAndKeyStability(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "svc", "bin"), 0o755)
	exe := filepath.Join(dir, "svc", "bin", "run")
	testenv.WriteExecutable(t, exe, "#!/bin/sh\nexec sleep 1000\n")
	svcs := model.Services{"a": {Name: "a", Type: "process", Attrs: map[string]any{"pkg": "svc", "port": json.Number("8080")}}}
	m, err := BuildManifest(svcs, infraOf("t1"), distOf("a", "t1"), BuildOptions{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Mappings) != 1 {
		t.Fatal(m.Mappings)
	}
	ms := m.Services[m.Mappings[0].Service]
	// The directory is the artifact, uploaded whole (issue 10, item 3).
	if want, _ := DirDigest(filepath.Join(dir, "svc")); ms.Pkg != filepath.Join(dir, "svc") || !ms.ArtifactDir || ms.Artifact != want {
		t.Errorf("pkg %s artifact %s (directory %v), want the directory %s uploaded whole as %s", ms.Pkg, ms.Artifact, ms.ArtifactDir, filepath.Join(dir, "svc"), want)
	}
	// A round trip through the manifest file keeps keys and content.
	b, err := model.MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := model.UnmarshalManifest(b, "m.json")
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equivalent(m) {
		t.Error("manifest round trip differs")
	}
	for k, s := range back.Services {
		if s.Key() != k {
			t.Errorf("key of %s changed by a round trip", s.Name)
		}
	}
	// Changing the artifact changes the key.
	testenv.WriteExecutable(t, exe, "#!/bin/sh\nexec sleep 1001\n")
	m2, _ := BuildManifest(svcs, infraOf("t1"), distOf("a", "t1"), BuildOptions{BaseDir: dir})
	if m2.Mappings[0].Service == m.Mappings[0].Service {
		t.Error("a new artifact kept the key")
	}
}

func TestPlanUnreachableTargetRestoresFromStore(t *testing.T) {
	svcs := model.Services{"db": echoSvc("db", nil, nil, true), "app": echoSvc("app", []string{"db"}, nil, false)}
	old := mustBuild(t, svcs, infraOf("t1", "t2"), distOf("db", "t1", "app", "t2"))
	new := mustBuild(t, svcs, infraOf("t2"), distOf("db", "t2", "app", "t2"))
	p, err := PlanTransition(old, new, PlanOptions{Unreachable: map[string]bool{"t1": true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if s.Target == "t1" {
			t.Errorf("step on the unreachable target: %s", s)
		}
	}
	r := stepOf(p, StepRestoreStore, "db", "t2")
	a := stepOf(p, StepActivate, "db", "t2")
	if r == nil || a == nil || !contains(a.Deps, r.ID) {
		t.Fatalf("db must be restored from the store before activation:\n%s", p)
	}
	if len(p.Notes) == 0 {
		t.Error("no note about the forgotten mapping")
	}
	// Reachable but gone from the infrastructure: deactivated, state migrated.
	p, err = PlanTransition(old, new, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stepOf(p, StepDeactivate, "db", "t1") == nil || stepOf(p, StepSnapshot, "db", "t1") == nil || stepOf(p, StepRestore, "db", "t2") == nil {
		t.Errorf("reachable old target: want deactivate+snapshot+restore:\n%s", p)
	}
	// --no-migration: no state steps.
	p, _ = PlanTransition(old, new, PlanOptions{NoMigration: true})
	for _, s := range p.Steps {
		if s.Kind == StepSnapshot || s.Kind == StepRestore || s.Kind == StepTransfer {
			t.Errorf("--no-migration planned %s", s)
		}
	}
}

// randomSystem builds a random acyclic services model (dependsOn only to
// lower-numbered services, connectsTo anywhere) and a random distribution.
func randomSystem(r *rand.Rand, nsvc int, targets []string) (model.Services, model.Distribution) {
	svcs := model.Services{}
	d := model.Distribution{}
	for i := 0; i < nsvc; i++ {
		name := fmt.Sprintf("s%d", i)
		var deps, conns []string
		for j := 0; j < i; j++ {
			if r.Intn(4) == 0 {
				deps = append(deps, fmt.Sprintf("s%d", j))
			}
		}
		for j := 0; j < nsvc; j++ {
			if j != i && r.Intn(6) == 0 {
				conns = append(conns, fmt.Sprintf("s%d", j))
			}
		}
		svcs[name] = echoSvc(name, deps, conns, r.Intn(3) == 0)
		n := 1 + r.Intn(2)
		perm := r.Perm(len(targets))
		for k := 0; k < n; k++ {
			d[name] = append(d[name], model.Mapping{Target: targets[perm[k]]})
		}
	}
	return svcs, d
}

// TestPlanProperties checks, over random transitions, that nothing is lost
// and every order constraint holds.
func TestPlanProperties(t *testing.T) {
	targets := []string{"t1", "t2", "t3", "t4"}
	infra := infraOf(targets...)
	for seed := int64(0); seed < 300; seed++ {
		r := rand.New(rand.NewSource(seed))
		nsvc := 1 + r.Intn(10)
		svcs, d1 := randomSystem(r, nsvc, targets)
		_, d2 := randomSystem(r, nsvc, targets)
		// Keep the dependency structure, change only the placement.
		old, err := BuildManifest(svcs, infra, d1, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		new, err := BuildManifest(svcs, infra, d2, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var unreach map[string]bool
		if r.Intn(4) == 0 {
			unreach = map[string]bool{targets[r.Intn(len(targets))]: true}
			// Activation on an unreachable target is an error; skip such cases.
			bad := false
			inOld := map[model.ServiceMapping]bool{}
			for _, m := range old.Mappings {
				inOld[m] = true
			}
			for _, m := range new.Mappings {
				if unreach[m.Target] && !inOld[m] {
					bad = true
				}
			}
			if bad {
				if _, err := PlanTransition(old, new, PlanOptions{Unreachable: unreach}); err == nil {
					t.Fatalf("seed %d: activation on an unreachable target planned", seed)
				}
				continue
			}
		}
		p, err := PlanTransition(old, new, PlanOptions{Unreachable: unreach})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		checkPlan(t, seed, old, new, p, unreach)
	}
}

func checkPlan(t *testing.T, seed int64, old, new *model.Manifest, p *Plan, unreach map[string]bool) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s\nplan:\n%s", seed, fmt.Sprintf(format, args...), p)
	}
	inOld, inNew := map[model.ServiceMapping]bool{}, map[model.ServiceMapping]bool{}
	for _, m := range old.Mappings {
		inOld[m] = true
	}
	for _, m := range new.Mappings {
		inNew[m] = true
	}
	act, deact := map[model.ServiceMapping]*Step{}, map[model.ServiceMapping]*Step{}
	locked := map[string]int{}
	unlocked := map[string]int{}
	maxDeact, minAct := 0, len(p.Steps)+1
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.ID != i+1 {
			fail("step %d has ID %d", i+1, s.ID)
		}
		for _, d := range s.Deps {
			if d >= s.ID {
				fail("step %d depends on later step %d", s.ID, d)
			}
		}
		if unreach[s.Target] {
			fail("step on unreachable target: %s", s)
		}
		m := model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container}
		switch s.Kind {
		case StepActivate:
			if act[m] != nil {
				fail("activated twice: %s", s)
			}
			act[m] = s
			minAct = min(minAct, s.ID)
		case StepDeactivate:
			if deact[m] != nil {
				fail("deactivated twice: %s", s)
			}
			deact[m] = s
			maxDeact = max(maxDeact, s.ID)
		case StepLock:
			locked[s.Target] = s.ID
		case StepUnlock:
			unlocked[s.Target] = s.ID
		}
		if s.Kind != StepLock && s.Kind != StepUpload && s.Kind != StepTransfer {
			if id, ok := locked[s.Target]; !ok || !contains(s.Deps, id) && s.Kind != StepUnlock {
				fail("step %s runs without the lock of %s", s, s.Target)
			}
		}
	}
	// Nothing lost: exactly the differences are acted on.
	for m := range inNew {
		if !inOld[m] && act[m] == nil {
			fail("new mapping %v not activated", m)
		}
	}
	for m := range act {
		if inOld[m] || !inNew[m] {
			fail("mapping %v activated needlessly", m)
		}
	}
	for m := range inOld {
		if !inNew[m] && !unreach[m.Target] && deact[m] == nil {
			fail("obsolete mapping %v not deactivated", m)
		}
	}
	for m := range deact {
		if inNew[m] || !inOld[m] {
			fail("mapping %v deactivated needlessly", m)
		}
	}
	if len(deact) > 0 && len(act) > 0 && maxDeact > minAct {
		fail("an activation precedes a deactivation")
	}
	// Order: dependencies first on activation, dependents first on deactivation.
	for m, s := range act {
		for _, d := range new.Services[m.Service].DependsOn {
			if ds := act[d]; ds != nil && !contains(s.Deps, ds.ID) {
				fail("activation %s does not wait for its dependency %s", s, ds)
			}
		}
	}
	for m, s := range deact {
		for _, d := range old.Services[m.Service].DependsOn {
			if ds := deact[d]; ds != nil && !contains(ds.Deps, s.ID) {
				fail("deactivation of dependency %s does not wait for its dependent %s", ds, s)
			}
		}
	}
	for tgt, id := range locked {
		u, ok := unlocked[tgt]
		if !ok || u < id {
			fail("target %s locked but not unlocked", tgt)
		}
	}
	// Moved state is restored before the new copy starts.
	for _, s := range p.Steps {
		if s.Kind == StepRestore || s.Kind == StepRestoreStore {
			m := model.ServiceMapping{Service: s.Key, Target: s.Target, Container: s.Container}
			a := act[m]
			if a == nil || !contains(a.Deps, s.ID) {
				fail("restore %s not before its activation", s)
			}
		}
	}
}

// TestPlanIdenticalAfterRoundTrip: a manifest read back from disk plans no
// work against the same deployment built afresh (no spurious restarts or
// context updates), for random systems.
func TestPlanIdenticalAfterRoundTrip(t *testing.T) {
	targets := []string{"t1", "t2", "t3"}
	for seed := int64(0); seed < 100; seed++ {
		r := rand.New(rand.NewSource(seed))
		svcs, d := randomSystem(r, 1+r.Intn(8), targets)
		m := mustBuild(t, svcs, infraOf(targets...), d)
		data, err := model.MarshalManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := model.UnmarshalManifest(data, "m.json")
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanTransition(back, m, PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Steps) != 0 {
			t.Fatalf("seed %d: identical deployment planned work:\n%s", seed, p)
		}
	}
}

// TestBuildManifestCanonicalValues: Go-typed values (as a program may
// build models) plan no work against the same manifest read from disk.
func TestBuildManifestCanonicalValues(t *testing.T) {
	svcs := model.Services{"a": {Name: "a", Type: "echo", Attrs: map[string]any{"port": 8080, "ratio": 0.5, "tags": []string{"x"}}}}
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": "http://h:1", "mem": 2048}, Extra: map[string]any{}}}
	m := mustBuild(t, svcs, infra, distOf("a", "t1"))
	data, _ := model.MarshalManifest(m)
	back, err := model.UnmarshalManifest(data, "m.json")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := PlanTransition(back, m, PlanOptions{}); len(p.Steps) != 0 {
		t.Errorf("planned work:\n%s", p)
	}
	if env := ActivateRequest(m, m.Mappings[0]).Env; env["DYDISNIX_PROP_PORT"] != "8080" {
		t.Errorf("env = %v", env)
	}
}
