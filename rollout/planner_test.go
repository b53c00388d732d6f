package rollout

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
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

func infraOf(names ...string) model.Infrastructure {
	infra := model.Infrastructure{}
	for _, n := range names {
		infra[n] = &model.Target{Name: n, Properties: map[string]any{"hostname": n}}
	}
	return infra
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
	p, err := NewPlanner(Models{Services: svc, QoS: qos, Augment: aug, Ports: ports}, nil)
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
	augd, err := p.Augment(context.Background(), infra)
	if err != nil {
		t.Fatal(err)
	}
	if augd["t1"].Properties["secret"] == nil || infra["t1"].Properties["secret"] != nil {
		t.Fatalf("augmentation not applied on a copy: %v / %v", augd["t1"].Properties, infra["t1"].Properties)
	}
	// the previous distribution reaches the policy: the stateful store stays
	prev := model.Distribution{"store": {{Target: "t2"}}, "web": {{Target: "t1"}}}
	d, err := p.Plan(context.Background(), augd, prev, true)
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
	p, err := NewPlanner(Models{Services: svc, QoS: qos}, nil)
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

// TestModelPlannerReusesUnchangedModels: a JSON services model is not
// parsed again while no model file changed (an idle resync), and is once
// one changed.
func TestModelPlannerReusesUnchangedModels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.json", `{"store": {"name": "store", "type": "process"}, "web": {"name": "web", "type": "process"}}`)
	qos := writeFile(t, dir, "qos.yaml", "steps: []\n")
	p, err := NewPlanner(Models{Services: svc, QoS: qos}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := p.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	loaded := reflect.ValueOf(p.services).Pointer()
	for i := 0; i < 3; i++ {
		if h, err := p.Load(context.Background()); err != nil || h != h1 {
			t.Fatalf("reload of unchanged models: %v, hash %s want %s", err, h, h1)
		}
		if reflect.ValueOf(p.services).Pointer() != loaded {
			t.Fatal("unchanged services model parsed again")
		}
	}
	writeFile(t, dir, "services.json", `{"store": {"name": "store", "type": "process"}}`)
	h2, err := p.Load(context.Background())
	if err != nil || h2 == h1 || len(p.services) != 1 {
		t.Fatalf("edited model not read again: %v (%d services)", err, len(p.services))
	}
}

// TestAssignedPortRule: one rule for dydisnix-env and the loop (both plan
// through Planner.Plan): a service that asked for a port gets the assigned
// one even when the model writes another value (with a warning), and a
// service that did not ask keeps its model value.
func TestAssignedPortRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.json", `{
  "web": {"name": "web", "type": "process", "portAssign": "shared", "port": 80},
  "plain": {"name": "plain", "type": "process", "port": 81}}`)
	qos := writeFile(t, dir, "qos.yaml", "steps:\n  - filter: divideRoundRobin\n")
	ports := filepath.Join(dir, "ports.json")
	p, err := NewPlanner(Models{Services: svc, QoS: qos, Ports: ports}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, err := p.Plan(context.Background(), infraOf("t1"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Services["web"].Attrs["port"]); got != "3001" {
		t.Errorf("web port = %s, want the assigned 3001 (assignment wins)", got)
	}
	if got := fmt.Sprint(d.Services["plain"].Attrs["port"]); got != "81" {
		t.Errorf("plain port = %s, want the model's 81 (it asked for no assignment)", got)
	}
	w := InjectAssignments(model.Services{"x": {Name: "x", Attrs: map[string]any{"port": 1}}}, map[string]int64{"x": 2}, nil)
	if len(w) != 1 || !strings.Contains(w[0], "replaces the model's value 1") {
		t.Errorf("warnings = %q", w)
	}
}

// TestPreviousPortsUnreadable: a ports or ids file that exists but cannot
// be read is an error, never "no previous assignments" (which would
// reassign every port).
func TestPreviousPortsUnreadable(t *testing.T) {
	t.Parallel()
	for _, which := range []string{"ports", "ids"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			svc := writeFile(t, dir, "services.json", `{"web": {"name": "web", "type": "process", "portAssign": "shared", "requiresUniqueIdsFor": ["ports"]}}`)
			qos := writeFile(t, dir, "qos.yaml", "steps:\n  - filter: divideRoundRobin\n")
			res := writeFile(t, dir, "idresources.yaml", "ports: {min: 3000, max: 4000}\n")
			// the file's parent is a regular file: stat fails with ENOTDIR
			notDir := writeFile(t, dir, "notadir", "")
			m := Models{Services: svc, QoS: qos}
			if which == "ports" {
				m.Ports = filepath.Join(notDir, "ports.json")
			} else {
				m.IDResources, m.IDs = res, filepath.Join(notDir, "ids.json")
			}
			p, err := NewPlanner(m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Plan(context.Background(), infraOf("t1"), nil, false); err == nil || !strings.Contains(err.Error(), "notadir") {
				t.Fatalf("Plan = %v, want an error naming the unreadable file", err)
			}
		})
	}
}

// TestPlannerNixQoSModel: the seeds' usage `dydisnix-env -s services.nix -a
// augment.nix -q qos.nix` with the original's QoS model, -F catalog and
// --extra-params, which reach the services model, the augmentation model,
// the catalog and the QoS model.
func TestPlannerNixQoSModel(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution, webType}:
rec {
  store = { name = "store"; type = "process"; stateful = true; };
  web = { name = "web"; type = webType; dependsOn = { inherit store; }; };
}
`)
	aug := writeFile(t, dir, "augment.nix", `{infrastructure, lib, extraType}:
lib.mapAttrs (n: t: t // { properties = t.properties // { supportedTypes = [ "process" extraType ]; }; }) infrastructure
`)
	catalog := writeFile(t, dir, "filters.nix", `{pkgs, referenceFilters, keep}:
referenceFilters // { keepOnly = {distribution}: pkgs.lib.mapAttrs (s: ts: builtins.filter (t: t == keep) ts) distribution; }
`)
	qos := writeFile(t, dir, "qos.nix", `{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:
filters.keepOnly {
  distribution = filters.mapAttrOnList {
    inherit services infrastructure;
    distribution = initialDistribution;
    serviceProperty = "type";
    targetPropertyList = "supportedTypes";
  };
}
`)
	extra := `{ webType = "wrapper"; extraType = "wrapper"; keep = "t2"; }`
	p, err := NewPlanner(Models{Services: svc, QoS: qos, Filters: catalog, Augment: aug, ExtraParams: extra}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	augd, err := p.Augment(context.Background(), infraOf("t1", "t2"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Plan(context.Background(), augd, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"store", "web"} {
		if got := d.Distribution.Targets(s); len(got) != 1 || got[0] != "t2" {
			t.Errorf("%s on %v, want [t2]", s, got)
		}
	}
}
