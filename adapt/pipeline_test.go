package adapt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestModelPlanner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.json", `{
  "store": {"name": "store", "type": "process", "stateful": true},
  "web": {"name": "web", "type": "process", "dependsOn": ["store"], "portAssign": "shared"}}`)
	qos := writeFile(t, dir, "qos.yaml", "steps:\n  - filter: mapStatefulToPrevious\n  - filter: divideRoundRobin\n")
	aug := writeFile(t, dir, "augment.yaml", "rules:\n  - set:\n      properties:\n        secret: hunter2\n")
	ports := filepath.Join(dir, "ports.json")
	p, err := NewModelPlanner(PipelineConfig{Services: svc, QoS: qos, Augment: aug, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := p.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := p.Load(context.Background()); h2 != h1 {
		t.Fatalf("hash not stable")
	}
	infra := infraOf("t1", "t2")
	augd, err := p.Augment(infra)
	if err != nil {
		t.Fatal(err)
	}
	if augd["t1"].Properties["secret"] == nil || infra["t1"].Properties["secret"] != nil {
		t.Fatalf("augmentation not applied on a copy: %v / %v", augd["t1"].Properties, infra["t1"].Properties)
	}
	// the previous distribution reaches the policy: the stateful store stays
	prev := model.Distribution{"store": {{Target: "t2"}}, "web": {{Target: "t1"}}}
	d, err := p.Plan(context.Background(), augd, prev)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Distribution.Targets("store"); len(got) != 1 || got[0] != "t2" {
		t.Errorf("store placed on %v, want its previous target t2 (mapStatefulToPrevious)", got)
	}
	if _, err := os.Stat(ports); err != nil {
		t.Errorf("ports file not written: %v", err)
	}
	if d.Services["web"].Attrs["port"] == nil {
		t.Errorf("assigned port not set on the service: %v", d.Services["web"].Attrs)
	}
	// an edit changes the hash; a broken edit is an error naming the file
	writeFile(t, dir, "qos.yaml", "steps:\n  - filter: divideRoundRobin\n")
	if h3, err := p.Load(context.Background()); err != nil || h3 == h1 {
		t.Fatalf("edit: %v, hash changed %v", err, h3 != h1)
	}
	writeFile(t, dir, "qos.yaml", "steps:\n  - filter: noSuchFilter\n")
	if _, err := p.Load(context.Background()); err == nil {
		t.Fatal("unknown filter accepted")
	}
}

// TestModelPlannerNixCache: a .nix services model is evaluated again only
// when its file changes (idle resyncs must not run nix-instantiate).
func TestModelPlannerNixCache(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatal("nix-instantiate is required (apt install nix-bin)")
	}
	t.Parallel()
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.nix", `{system, distribution, invDistribution, pkgs}:
rec { store = { name = "store"; type = "process"; }; web = { name = "web"; type = "process"; dependsOn = { inherit store; }; }; }`)
	qos := writeFile(t, dir, "qos.yaml", "steps: []\n")
	p, err := NewModelPlanner(PipelineConfig{Services: svc, QoS: qos})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := p.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.services["web"].DependsOn; len(got) != 1 || got[0] != "store" {
		t.Fatalf("web dependsOn %v", got)
	}
	for i := 0; i < 20; i++ {
		if h, err := p.Load(context.Background()); err != nil || h != h1 {
			t.Fatalf("cached load: %v", err)
		}
	}
	writeFile(t, dir, "services.nix", `{system, distribution, invDistribution, pkgs}:
{ store = { name = "store"; type = "process"; }; }`)
	later := time.Now().Add(time.Second)
	os.Chtimes(svc, later, later)
	h2, err := p.Load(context.Background())
	if err != nil || h2 == h1 || len(p.services) != 1 {
		t.Fatalf("edited .nix model not re-evaluated: %v", err)
	}
}
