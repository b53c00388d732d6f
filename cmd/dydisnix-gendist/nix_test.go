package main

import (
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// TestNixDistributionEvaluates writes distributions in the Nix form and
// reads them back through nix-instantiate (the model's .nix distribution
// reader calls the function with the infrastructure).
func TestNixDistributionEvaluates(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		testenv.Missing(t, "nix-instantiate not installed (CI installs nix-bin)")
	}
	t.Parallel()
	infra := model.Infrastructure{}
	for _, n := range []string{"t1", "t-2", "in", "x.y"} {
		infra[n] = &model.Target{Name: n, Properties: map[string]any{"hostname": n}, Extra: map[string]any{}}
	}
	cases := map[string]model.Distribution{
		"plain":   {"a": {{Target: "t1"}, {Target: "t-2"}}, "b": {}, "my.svc": {{Target: "in"}}, "c": {{Target: "x.y"}}},
		"records": {"a": {{Target: "t1"}, {Target: "t-2", Container: "c", Record: true}}},
	}
	for name, d := range cases {
		f := filepath.Join(t.TempDir(), name+".nix")
		if err := os.WriteFile(f, []byte(NixDistribution(d)), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := model.LoadDistribution(f, infra)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, NixDistribution(d))
		}
		want := d.Clone()
		if name == "records" { // the targets form makes every mapping a record
			want = model.Distribution{"a": {{Target: "t1", Record: true}, {Target: "t-2", Container: "c", Record: true}}}
		}
		for k, v := range want {
			if v == nil {
				want[k] = []model.Mapping{}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
}

// TestNixModelsExtraParams reads a .nix services model with --extra-params.
func TestNixModelsExtraParams(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		testenv.Missing(t, "nix-instantiate not installed (CI installs nix-bin)")
	}
	t.Parallel()
	s := writeFile(t, "services.nix", `{system, pkgs, distribution, invDistribution, myType ? "process"}:
rec { web = { name = "web"; type = myType; }; }
`)
	i := writeFile(t, "infrastructure.json", `{"a": {"properties": {"supportedTypes": ["process"]}}, "b": {"properties": {"supportedTypes": ["echo"]}}}`)
	for params, want := range map[string]string{"": `"a"`, `{ myType = "echo"; }`: `"b"`} {
		args := []string{"-s", s, "-i", i, "-q", "builtin:by-type"}
		if params != "" {
			args = append(args, "--extra-params", params)
		}
		code, out, errs := gendistRun(t, args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%q: %d %s %s", params, code, out, errs)
		}
	}
}
