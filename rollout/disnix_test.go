package rollout

import (
	"context"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/disnix"
	"github.com/dydisnix/dydisnix/model"
)

// TestDisnixDeployerWithFakeDisnix runs the Disnix deployer against FAKE
// disnix-env / disnix-snapshot scripts (Disnix cannot run here): the tool is
// called with the services model and generated infrastructure and
// distribution files, and the deployed distribution becomes the previous
// one of the next policy run.
func TestDisnixDeployerWithFakeDisnix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	calls := filepath.Join(dir, "calls")
	for _, tool := range []string{"disnix-env", "disnix-snapshot", "disnix-reconstruct"} {
		script := "#!/bin/sh\necho \"" + tool + " $*\" >> " + calls + "\n"
		testenv.WriteExecutable(t, filepath.Join(bin, tool), script)
	}
	svc := writeFile(t, dir, "services.nix", `{system, distribution, invDistribution, pkgs}: { web = { name = "web"; type = "process"; }; }`)
	qos := writeFile(t, dir, "qos.yaml", "steps:\n  - filter: divideRoundRobin\n")
	p, err := New(Config{Deployer: "disnix", Models: Models{Services: svc, QoS: qos}, StateDir: filepath.Join(dir, "state"),
		DisnixBin: bin, Parallel: 3, Reconstruct: true, Disnix: disnix.Options{Profile: "prof"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if prev, err := p.Current(ctx); err != nil || prev != nil {
		t.Fatalf("Current before any deploy = %v, %v", prev, err)
	}
	if _, err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx, infraOf("t1"), Request{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan) == 0 {
		t.Errorf("no plan reported")
	}
	if err := p.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := p.Current(ctx)
	if err != nil || got.Targets("web")[0] != "t1" {
		t.Fatalf("Current = %v, %v", got, err)
	}
	b, _ := os.ReadFile(calls)
	log := string(b)
	for _, want := range []string{"disnix-env ", "-s " + svc, "--max-concurrent-transfers 3", "--profile prof", "disnix-snapshot", "disnix-reconstruct"} {
		if !strings.Contains(log, want) {
			t.Errorf("fake Disnix calls lack %q:\n%s", want, log)
		}
	}
}

// TestDisnixCurrentError: a deployed distribution that cannot be read is an
// error, never "nothing deployed" (the policy would then move everything).
func TestDisnixCurrentError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	p, err := New(Config{Deployer: "disnix", StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	// a directory where the file should be: not "does not exist"
	if err := os.MkdirAll(filepath.Join(state, "distribution.json", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d, err := p.Current(context.Background()); err == nil {
		t.Fatalf("Current = %v, nil; want an error", d)
	}
}

func TestMoved(t *testing.T) {
	t.Parallel()
	prev := model.Distribution{"a": {{Target: "t1"}}, "b": {{Target: "t1"}, {Target: "t2"}}, "gone": {{Target: "t1"}}}
	next := model.Distribution{"a": {{Target: "t2"}}, "b": {{Target: "t2"}, {Target: "t1"}}, "new": {{Target: "t1"}}}
	if got := Moved(prev, next); len(got) != 1 || got[0] != "a" {
		t.Errorf("Moved = %v, want [a]", got)
	}
}

func TestLockOwnerStable(t *testing.T) {
	t.Parallel()
	a, b := LockOwner("state"), LockOwner("./state")
	if a != b || !strings.HasPrefix(a, "dydisnix@") {
		t.Errorf("LockOwner = %q / %q", a, b)
	}
}
