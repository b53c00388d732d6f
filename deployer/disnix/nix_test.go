package disnix

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func mustValue(t *testing.T, js string) any {
	t.Helper()
	v, err := model.DecodeValue([]byte(js), model.FormatJSON, "test")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustInfra(t *testing.T, js string) model.Infrastructure {
	t.Helper()
	infra, err := model.InfrastructureFromValue(mustValue(t, js), "test")
	if err != nil {
		t.Fatal(err)
	}
	return infra
}

func mustDist(t *testing.T, js string) model.Distribution {
	t.Helper()
	d, err := model.DistributionFromValue(mustValue(t, js), "test")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// nixEval evaluates a Nix expression with the real nix-instantiate and
// returns the decoded JSON result.
func nixEval(t *testing.T, expr string) any {
	t.Helper()
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("nix-instantiate is required (apt-get install nix-bin): %v", err)
	}
	cmd := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "-E", expr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate %s: %v\n%s", expr, err, stderr.String())
	}
	v, err := model.DecodeValue(out, model.FormatJSON, "nix-instantiate output")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// resolveExpr applies the written distribution function to the written
// infrastructure and maps every target back to its name, so the result is
// comparable to the model distribution: svc → [name] or
// svc → [{target = name; container = c}].
const resolveExpr = `
let
  infrastructure = import %q;
  distribution = (import %q) { inherit infrastructure; };
  names = builtins.attrNames infrastructure;
  nameOf = t: builtins.head (builtins.filter (n: infrastructure.${n} == t) names);
  resolve = v:
    if builtins.isList v then map nameOf v
    else map (r: { target = nameOf r.target; } // (if r ? container then { inherit (r) container; } else {})) v.targets;
in { infrastructure = infrastructure; distribution = builtins.mapAttrs (svc: resolve) distribution; }
`

const testInfra = `{
  "test1": {"properties": {"hostname": "test1", "mem": 1024, "supportedTypes": ["process", "wrapper"], "zone": "eu"},
            "containers": {"process": {}, "mysql-database": {"mysqlPort": 3306, "mysqlPassword": "s3cr\"et${x}\\n"}},
            "system": "x86_64-linux", "numOfCores": 2},
  "test-2": {"properties": {"hostname": "10.0.0.2", "ratio": 0.75, "big": 1e21, "neg": -3, "negf": -2.5, "nothing": null,
                            "meta": {"description": "a \"quoted\"\n multi-line ${not.interpolated} $x text"}, "empty": {}, "list": []},
             "targetProperty": "hostname", "clientInterface": "disnix-ssh-client"},
  "if": {"properties": {"hostname": "kw", "with space": "yes", "1st": true}}
}`

func TestNixWriterGoldenAndEval(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		dist string
	}{
		{"plain", `{"svcA": ["test1"], "svcB": ["test1", "test-2"], "svc-c": [], "rec": ["if"]}`},
		{"containers", `{"db": [{"target": "test1", "container": "mysql-database"}], "web": [{"target": "test-2"}, "test1"], "p": ["test-2"]}`},
		{"empty", `{}`},
	}
	infra := mustInfra(t, testInfra)
	infraNix, err := InfrastructureNix(infra)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "infrastructure.nix.golden", infraNix)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dist := mustDist(t, tc.dist)
			dir := t.TempDir()
			infraFile, distFile, err := WriteModels(dir, infra, dist)
			if err != nil {
				t.Fatal(err)
			}
			distNix, err := os.ReadFile(distFile)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "distribution-"+tc.name+".nix.golden", distNix)
			for _, f := range []string{infraFile, distFile} {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600 (the infrastructure may hold secrets)", f, st.Mode().Perm())
				}
			}

			got := nixEval(t, sprintf(resolveExpr, infraFile, distFile)).(map[string]any)
			// The infrastructure evaluates to exactly the model's values.
			wantInfra := map[string]any{}
			for name, tg := range infra {
				wantInfra[name] = roundTrip(t, tg.ToMap())
			}
			if !model.Equal(got["infrastructure"], wantInfra) {
				t.Errorf("infrastructure evaluates to\n%v\nwant\n%v", got["infrastructure"], wantInfra)
			}
			// The distribution maps every service to the expected target names.
			wantDist := map[string]any{}
			for svc, ms := range dist {
				verbose := false
				for _, m := range ms {
					verbose = verbose || m.Record || m.Container != ""
				}
				list := []any{}
				for _, m := range ms {
					if !verbose {
						list = append(list, m.Target)
						continue
					}
					r := map[string]any{"target": m.Target}
					if m.Container != "" {
						r["container"] = m.Container
					}
					list = append(list, r)
				}
				wantDist[svc] = list
			}
			if !model.Equal(got["distribution"], wantDist) {
				t.Errorf("distribution evaluates to\n%v\nwant\n%v", got["distribution"], wantDist)
			}
		})
	}
}

// roundTrip passes a value through JSON so numbers compare as Nix prints them.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return mustValue(t, string(b))
}

func TestNixStringsEval(t *testing.T) {
	t.Parallel()
	strs := []string{"", "plain", `q"uote`, `back\slash`, "${x}", "$${x}", "$", "a$", "''", "'' ${", "new\nline\ttab\rcr", "ünïcödé ✓", `\${x}`, "$\\{"}
	props := map[string]any{}
	for i, s := range strs {
		props[sprintf("p%02d", i)] = s
	}
	infra := model.Infrastructure{"t": {Name: "t", Properties: props}}
	dir := t.TempDir()
	infraFile, _, err := WriteModels(dir, infra, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := nixEval(t, sprintf("(import %q).t.properties", infraFile))
	if !model.Equal(got, props) {
		t.Errorf("strings evaluate to %q, want %q", got, props)
	}
}

func TestDistributionNixErrors(t *testing.T) {
	t.Parallel()
	infra := mustInfra(t, testInfra)
	cases := []struct {
		name string
		dist model.Distribution
	}{
		{"unknown target", model.Distribution{"svc": {{Target: "nope"}}}},
		{"empty target", model.Distribution{"svc": {{Target: ""}}}},
	}
	for _, tc := range cases {
		if _, err := DistributionNix(tc.dist, infra); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := InfrastructureNix(model.Infrastructure{"t": {Name: "t", Properties: map[string]any{"nul": "a\x00b"}}}); err == nil {
		t.Error("a NUL byte (not representable in Nix) gave no error")
	}
}

// BenchmarkWriteModels writes a 200-target infrastructure and a
// 1000-service distribution.
func BenchmarkWriteModels(b *testing.B) {
	infra := model.Infrastructure{}
	for i := 0; i < 200; i++ {
		name := sprintf("target%03d", i)
		infra[name] = &model.Target{Name: name, Properties: map[string]any{
			"hostname": name, "mem": json.Number("4096"), "zone": "z", "supportedTypes": []any{"process", "wrapper"},
		}, Containers: map[string]map[string]any{"process": {}}, Extra: map[string]any{}}
	}
	names := infra.Names()
	dist := model.Distribution{}
	for i := 0; i < 1000; i++ {
		dist[sprintf("svc%04d", i)] = []model.Mapping{{Target: names[i%200]}, {Target: names[(i+1)%200]}}
	}
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := WriteModels(dir, infra, dist); err != nil {
			b.Fatal(err)
		}
	}
}
