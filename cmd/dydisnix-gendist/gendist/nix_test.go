package gendist

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
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

// TestNixOutputVectors checks the Nix form against the gendist-output
// vectors: byte for byte for plain target lists; for record mappings we
// keep the containers (Disnix's targets form) where the original dropped them.
func TestNixOutputVectors(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../testdata/gendist-output-*.json")
	if len(files) == 0 {
		t.Fatal("no vectors")
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		v, err := model.DecodeValue(data, model.FormatJSON, f)
		if err != nil {
			t.Fatal(err)
		}
		vm := v.(map[string]any)
		d, err := model.DistributionFromValue(vm["input"].(map[string]any)["qosResult"], f)
		if err != nil {
			t.Fatal(err)
		}
		want := vm["expected"].(map[string]any)["nixText"].(string)
		got := NixDistribution(d)
		if strings.Contains(f, "mixed") {
			want = "{infrastructure}:\n\n{\n  a = {\n    targets = [\n      { target = infrastructure.t1; }\n      { target = infrastructure.t2; container = \"c\"; }\n    ];\n  };\n}\n"
		}
		if got != want {
			t.Errorf("%s:\ngot  %q\nwant %q", f, got, want)
		}
	}
	if got := NixDistribution(model.Distribution{}); got != "\n{infrastructure}:\n\n{\n  \n}\n\t" {
		t.Errorf("empty: %q", got)
	}
	q := NixDistribution(model.Distribution{"my.svc": {{Target: "in"}}, "ok-1": {{Target: "host\"x"}}})
	for _, w := range []string{`"my.svc" = [`, `infrastructure."in"`, `ok-1 = [`, `infrastructure."host\"x"`} {
		if !strings.Contains(q, w) {
			t.Errorf("%q lacks %s", q, w)
		}
	}
}
