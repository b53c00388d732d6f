package testbed

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// examplesDir is the examples/ folder the README's Quick start uses.
const examplesDir = "../examples"

// normalServices renders services for comparison: a relative pkg resolved
// against the model's directory (as the deployer does), numbers as JSON.
func normalServices(t *testing.T, s model.Services, dir string) string {
	t.Helper()
	for _, svc := range s {
		if p, ok := svc.Attrs[model.AttrPkg].(string); ok && !filepath.IsAbs(p) {
			abs, err := filepath.Abs(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			svc.Attrs[model.AttrPkg] = abs
		}
	}
	data, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestExampleServicesAreTheDemoSystem: examples/services.nix (through the
// real nix-instantiate) and examples/services.yaml describe the system the
// demo and 'up --coordinator' deploy by default, and examples/qos.yaml is
// the demo's policy, so the Quick start and the demo never drift apart.
func TestExampleServicesAreTheDemoSystem(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	bin, err := filepath.Abs("../bin")
	if err != nil {
		t.Fatal(err)
	}
	demoFile := filepath.Join(t.TempDir(), "services.json")
	data, _ := json.Marshal(DemoServicesModel(bin))
	if err := os.WriteFile(demoFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	demo, err := model.LoadServices(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	want := normalServices(t, demo, "")
	for _, file := range []string{"services.nix", "services.yaml"} {
		s, err := model.LoadServices(filepath.Join(examplesDir, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := normalServices(t, s, examplesDir); got != want {
			t.Errorf("examples/%s differs from the demo's system:\n%s\nwant\n%s", file, got, want)
		}
	}
	policy, err := os.ReadFile(filepath.Join(examplesDir, "qos.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(policy), DemoPolicy) {
		t.Errorf("examples/qos.yaml does not end with the demo's policy:\n%s", policy)
	}
}

// TestExampleModelsPlan runs the planning commands of the Quick start on
// examples/ with the real dydisnix-gendist, dydisnix-augment-infra and
// nix-instantiate: every service is placed, and the augmentation applies.
func TestExampleModelsPlan(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	bin := t.TempDir()
	for _, cmd := range []string{"dydisnix-gendist", "dydisnix-augment-infra"} {
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/"+cmd).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v: %s", cmd, err, out)
		}
	}
	ex := func(f string) string { return filepath.Join(examplesDir, f) }
	infra := filepath.Join(t.TempDir(), "augmented.json")
	if out, err := exec.Command(filepath.Join(bin, "dydisnix-augment-infra"), "-i", ex("infrastructure.yaml"),
		"-a", ex("augment.yaml"), "-o", infra).CombinedOutput(); err != nil {
		t.Fatalf("dydisnix-augment-infra: %v: %s", err, out)
	}
	aug, err := model.LoadInfrastructure(infra)
	if err != nil {
		t.Fatal(err)
	}
	if aug["machine1"].Properties["site"] != "quickstart" {
		t.Errorf("augmented machine1: %v", aug["machine1"].Properties)
	}
	for _, svcs := range []string{"services.nix", "services.yaml"} {
		out, err := exec.Command(filepath.Join(bin, "dydisnix-gendist"), "-s", ex(svcs), "-i", infra,
			"-q", ex("qos.yaml"), "-f", "json").Output()
		if err != nil {
			t.Fatalf("dydisnix-gendist -s %s: %v", svcs, err)
		}
		var dist map[string][]string
		if err := json.Unmarshal(out, &dist); err != nil {
			t.Fatalf("%s: %v: %s", svcs, err, out)
		}
		for _, name := range DemoServiceNames() {
			if len(dist[name]) != 1 || !strings.HasPrefix(dist[name][0], "machine") {
				t.Errorf("%s: %s placed on %v", svcs, name, dist[name])
			}
		}
	}
	props, err := LoadMachineProperties(ex("properties.yaml"))
	if err != nil || props["zone"] == nil {
		t.Errorf("examples/properties.yaml: %v %v", props, err)
	}
	if names, _, err := LoadMachines(ex("infrastructure.yaml"), 0); err != nil || len(names) != 4 {
		t.Errorf("examples/infrastructure.yaml as the testbed's machines: %v %v", names, err)
	}
}

// TestExampleWebSystemIsTheDemoSystem: examples/websystem/services.nix
// (through the real nix-instantiate) and services.yaml are the web system
// the demo deploys (WebSystemModel), their databases the component
// directories of testbed/services/websystem that the demo writes out.
func TestExampleWebSystemIsTheDemoSystem(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	bin, err := filepath.Abs("../bin")
	if err != nil {
		t.Fatal(err)
	}
	comps, err := filepath.Abs("services/websystem")
	if err != nil {
		t.Fatal(err)
	}
	demoFile := filepath.Join(t.TempDir(), "services.json")
	data, _ := json.Marshal(WebSystemModel(bin, comps))
	if err := os.WriteFile(demoFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	demo, err := model.LoadServices(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	want := normalServices(t, demo, "")
	dir := filepath.Join(examplesDir, "websystem")
	for _, file := range []string{"services.nix", "services.yaml"} {
		s, err := model.LoadServices(filepath.Join(dir, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := normalServices(t, s, dir); got != want {
			t.Errorf("examples/websystem/%s differs from the demo's web system:\n%s\nwant\n%s", file, got, want)
		}
	}
}
