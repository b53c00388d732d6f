package services

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/portassign"
	"github.com/dydisnix/dydisnix/qos"
)

// requireNix fails (never skips) when nix-instantiate is missing: the .nix
// model is part of what this package ships.
func requireNix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("nix-instantiate is required (apt-get install nix-bin): %v", err)
	}
}

// sameServices compares two services models; pkg values are compared after
// resolving them against their model's directory.
func sameServices(t *testing.T, a model.Services, aDir string, b model.Services, bDir string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d services vs %d", len(a), len(b))
	}
	norm := func(s *model.Service, dir string) map[string]any {
		m := s.ToMap()
		if p, ok := m["pkg"].(string); ok && !filepath.IsAbs(p) {
			m["pkg"] = filepath.Join(dir, p)
		}
		return m
	}
	for name, sa := range a {
		sb, ok := b[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		ma, mb := norm(sa, aDir), norm(sb, bDir)
		if !model.Equal(roundTrip(t, ma), roundTrip(t, mb)) {
			t.Errorf("service %s differs:\n%v\n%v", name, ma, mb)
		}
	}
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := model.DecodeValue(b, model.FormatJSON, "roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSystemModelsAgree(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := "system"
	js, err := model.LoadServices(filepath.Join(dir, "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	nx, err := model.LoadServices(filepath.Join(dir, "services.nix"))
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	sameServices(t, js, abs, nx, abs)

	// The shape the brief asks for.
	want := map[string]struct{ dependsOn, connectsTo []string }{
		"kvstore": {}, "webfront": {dependsOn: []string{"kvstore"}},
		"peerA": {connectsTo: []string{"peerB"}}, "peerB": {connectsTo: []string{"peerA"}},
		"chordBootstrap": {}, "chordNode1": {dependsOn: []string{"chordBootstrap"}},
		"chordNode2": {dependsOn: []string{"chordBootstrap"}}, "chordNode3": {dependsOn: []string{"chordBootstrap"}},
	}
	for name, w := range want {
		s := js[name]
		if s == nil {
			t.Fatalf("service %s missing", name)
		}
		if s.Type != "process" || len(s.DependsOn) != len(w.dependsOn) || len(s.ConnectsTo) != len(w.connectsTo) {
			t.Errorf("%s: type %s dependsOn %v connectsTo %v", name, s.Type, s.DependsOn, s.ConnectsTo)
		}
		if _, ok := s.Attrs["port"]; !ok {
			t.Errorf("%s has no port", name)
		}
	}
	if !js["kvstore"].DeployState() || !js["kvstore"].Stateful() {
		t.Error("kvstore must have deployState and stateful")
	}

	// Both id-resources files say the same.
	rj, err := portassign.LoadResources(filepath.Join(dir, "idresources.json"))
	if err != nil {
		t.Fatal(err)
	}
	rn, err := portassign.LoadResources(filepath.Join(dir, "idresources.nix"))
	if err != nil {
		t.Fatal(err)
	}
	if !model.Equal(roundTrip(t, rj), roundTrip(t, rn)) {
		t.Errorf("id resources differ: %v vs %v", rj, rn)
	}
}

func testInfra(n int) model.Infrastructure {
	infra := model.Infrastructure{}
	for i := 0; i < n; i++ {
		name := string(rune('a'+i)) + "-machine"
		infra[name] = &model.Target{Name: name, Properties: map[string]any{
			"hostname": name, "agentURL": "http://" + name + ":7420", "supportedTypes": []any{"process"},
		}, Extra: map[string]any{}}
	}
	return infra
}

func TestSystemPoliciesPlaceEveryService(t *testing.T) {
	t.Parallel()
	svcs, err := model.LoadServices(filepath.Join("system", "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	infra := testInfra(4)
	// A machine that cannot run processes gets nothing.
	infra["z-no-process"] = &model.Target{Name: "z-no-process", Properties: map[string]any{"hostname": "z", "supportedTypes": []any{"mysql-database"}}}
	for _, file := range []string{"qos.yaml", "qos-stateful.yaml"} {
		pol, err := qos.LoadPolicy(filepath.Join("system", file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		res, err := pol.Run(qos.Input{Services: svcs, Infrastructure: infra})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		perTarget := map[string]int{}
		for _, name := range svcs.Names() {
			ts := res.Distribution.Targets(name)
			if len(ts) != 1 || ts[0] == "z-no-process" {
				t.Errorf("%s: %s placed on %v, want one process-capable target", file, name, ts)
				continue
			}
			perTarget[ts[0]]++
		}
		// Round robin over 4 targets: 8 services, 2 each.
		for tg, n := range perTarget {
			if n != 2 {
				t.Errorf("%s: %s got %d services, want 2 (round robin): %v", file, tg, n, perTarget)
			}
		}
	}
}

func TestWriteSystemPointsAtBinaries(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	if err := WriteSystem(dir, binDir); err != nil {
		t.Fatal(err)
	}
	js, err := model.LoadServices(filepath.Join(dir, "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	nx, err := model.LoadServices(filepath.Join(dir, "services.nix"))
	if err != nil {
		t.Fatal(err)
	}
	sameServices(t, js, dir, nx, dir)
	for name, s := range js {
		pkg, _ := s.Attrs["pkg"].(string)
		if !filepath.IsAbs(pkg) || filepath.Dir(pkg) != binDir {
			t.Errorf("%s: pkg %q not in %s", name, pkg, binDir)
		}
		if st, err := os.Stat(pkg); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s: pkg %s is not an executable: %v", name, pkg, err)
		}
	}
	// The deployer accepts the system: every pkg resolves to an artifact.
	infra := testInfra(2)
	dist := model.Distribution{}
	for i, name := range js.Names() {
		dist[name] = []model.Mapping{{Target: infra.Names()[i%2]}}
	}
	man, err := deployer.BuildManifest(js, infra, dist, deployer.BuildOptions{BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Mappings) != len(js) {
		t.Errorf("manifest has %d mappings, want %d", len(man.Mappings), len(js))
	}
	for _, ms := range man.Services {
		if ms.Artifact == "" || filepath.Dir(ms.Pkg) != binDir {
			t.Errorf("%s: pkg %q artifact %q", ms.Name, ms.Pkg, ms.Artifact)
		}
		if ms.Name == "kvstore" && !ms.DeployState {
			t.Error("kvstore's state is not managed in the manifest")
		}
	}
	for _, f := range []string{"qos.yaml", "qos-stateful.yaml", "idresources.json", "idresources.nix"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
