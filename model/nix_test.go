package model

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/nixeval/nixevaltest"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// requireNix fails (never skips) when nix-instantiate is missing: the Nix
// readers must be tested in CI (install the Debian package nix-bin).
func requireNix(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatalf("nix-instantiate is not on PATH: install nix-bin to run the Nix model tests")
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := EncodeJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestNixServicesDisnixForm(t *testing.T) {
	t.Parallel()
	requireNix(t)
	file := filepath.Join("testdata", "nix", "services.nix")
	svcs, err := LoadServices(file)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join("testdata", "nix", "bin", "server"))
	checks := []struct {
		svc, attr string
		want      any
		present   bool
	}{
		{"server", AttrPkg, abs, true},          // path literal → absolute path string
		{"web", AttrPkg, "/usr/bin/true", true}, // string kept
		{"db", AttrPkg, nil, false},             // needs pkgs: dropped, never forced beyond a type check
		{"api", AttrPkg, nil, false},            // a function: dropped
		{"cli", AttrPkg, nil, false},            // pkgs.callPackage: dropped
		{"db", "weight", json.Number("0.75"), true},
		{"api", "url", "http://localhost:3001", true},
		{"web", "meta", map[string]any{"description": "the web front", "ratio": json.Number("1.0"), "tags": []any{"a", "b"}}, true},
	}
	for _, c := range checks {
		got, ok := svcs[c.svc].Attr(c.attr)
		if ok != c.present || (ok && !Equal(got, c.want)) {
			t.Errorf("%s.%s = %v (present %v), want %v (present %v)", c.svc, c.attr, got, ok, c.want, c.present)
		}
	}
	// dependsOn attribute sets become the referenced names in key order:
	// server's keys are api and database (= db).
	if got := strings.Join(svcs["server"].DependsOn, ","); got != "api,db" {
		t.Errorf("server.dependsOn = %s, want api,db", got)
	}
	if got := strings.Join(svcs["server"].ConnectsTo, ","); got != "web" {
		t.Errorf("server.connectsTo = %s, want web", got)
	}
	if svcs["db"].HasDependsOn {
		t.Errorf("db has no dependsOn in the model but got one")
	}
	if err := svcs.Validate(file); err != nil {
		t.Errorf("valid model: %v", err)
	}
}

func TestNixInfrastructureAndDistribution(t *testing.T) {
	t.Parallel()
	requireNix(t)
	infra, err := LoadInfrastructure(filepath.Join("testdata", "nix", "infrastructure.nix"))
	if err != nil {
		t.Fatal(err)
	}
	if got := infra["test1"].Properties["load"]; got != json.Number("0.125") {
		t.Errorf("load = %v", got)
	}
	key, _ := filepath.Abs(filepath.Join("testdata", "nix", "bin", "server"))
	if got := infra["test2"].Properties["sshKey"]; got != key {
		t.Errorf("a path property must become its absolute path, got %v", got)
	}
	d, err := LoadDistribution(filepath.Join("testdata", "nix", "distribution.nix"), infra)
	if err != nil {
		t.Fatal(err)
	}
	want := Distribution{
		"api":    {{Target: "test1"}, {Target: "test2"}},
		"db":     {{Target: "test1"}},
		"server": {{Target: "test2", Container: "process-secondary", Record: true}, {Target: "edge-3", Record: true}},
		"web":    {{Target: "edge-3"}},
	}
	if mustJSON(t, d) != mustJSON(t, want) {
		t.Errorf("distribution:\n%s\nwant\n%s", mustJSON(t, d), mustJSON(t, want))
	}
}

// TestNixDistributionTargetLookup checks §1.4(b): a target attribute set is
// matched by its targetProperty value; on duplicates the first target in
// sorted order wins; a hand-written attribute set works as well.
func TestNixDistributionTargetLookup(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	infra := Infrastructure{
		"b": {Name: "b", Properties: map[string]any{"hostname": "same"}},
		"a": {Name: "a", Properties: map[string]any{"hostname": "same"}},
		"c": {Name: "c", Properties: map[string]any{"hostname": "c.local", "addr": json.Number("7")}, Extra: map[string]any{"targetProperty": "addr"}},
	}
	file := writeFile(t, dir, "dist.nix", `{infrastructure}: {
  s1 = [ infrastructure.b ];
  s2 = [ { properties.hostname = "same"; } infrastructure.c ];
  s3 = { targets = [ { target = infrastructure.c // { extra = 1; }; container = "x"; } ]; };
}`)
	d, err := LoadDistribution(file, infra)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"s1":["a"],"s2":["a","c"],"s3":[{"container":"x","target":"c"}]}`
	if got, _ := CanonicalJSON(d); string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestNixErrors(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	infra := Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"hostname": "t1"}}}
	cases := []struct {
		name, file, content string
		kind                Kind
		want                []string
	}{
		{"syntax", "bad.nix", "{ a = ; }", KindInfrastructure, []string{"bad.nix", "nix evaluation failed", "syntax error"}},
		{"pkgs outside pkg", "svc.nix", `{pkgs, ...}: { a = { name = "a"; port = pkgs.lib.foo; }; }`, KindServices,
			[]string{"svc.nix", "uses `pkgs` outside a service's `pkg`"}},
		{"function property", "svc2.nix", `{ a = { name = "a"; type = "process"; hook = x: x; }; }`, KindServices,
			[]string{"svc2.nix", "a.hook", "got a function"}},
		{"unknown target", "dist.nix", `{infrastructure}: { s = [ infrastructure.t1 { properties.hostname = "nowhere"; } ]; }`, KindDistribution,
			[]string{"dist.nix", "s[1]", `no target of the infrastructure model has hostname = "nowhere"`}},
		{"target without property", "dist2.nix", `{infrastructure}: { s = [ { properties = {}; } ]; }`, KindDistribution,
			[]string{"dist2.nix", "s[0]", "has no properties.hostname"}},
		{"missing argument", "dist3.nix", `{infrastructure, ids}: { }`, KindDistribution,
			[]string{"dist3.nix", "ids"}},
		{"dependency without name", "svc3.nix", `rec { a = { name = "a"; }; b = { name = "b"; dependsOn = { x = { type = "t"; }; }; }; }`, KindServices,
			[]string{"svc3.nix", "b.dependsOn[0]", "with a name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, dir, c.file, c.content)
			_, err := LoadValue(file, c.kind, infra)
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestNixCancel cancels the evaluation of a model that would evaluate for
// hours and checks that the loader returns at once with an error wrapping
// context.Canceled and that the evaluator is gone (issue 8, defect 6: the
// evaluation ran under context.Background() and only a 2-minute timeout
// stopped it). It cannot run in parallel: it changes the package's
// evaluator command to a wrapper that reports when the evaluator runs.
func TestNixCancel(t *testing.T) {
	requireNix(t)
	old := NixInstantiate
	t.Cleanup(func() { NixInstantiate = old })
	file := writeFile(t, t.TempDir(), "forever.nix", nixevaltest.Forever)

	for _, load := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"LoadValueContext", func(ctx context.Context) error {
			_, err := LoadValueContext(ctx, file, KindPlain, nil, NixOptions{})
			return err
		}},
		{"LoadServicesContext", func(ctx context.Context) error {
			_, err := LoadServicesContext(ctx, file, NixOptions{})
			return err
		}},
	} {
		bin, started := nixevaltest.Wrapper(t)
		NixInstantiate = bin
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- load.run(ctx) }()
		pid := started(time.Minute)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), file) {
				t.Errorf("%s: want an error naming %s and wrapping context.Canceled, got %v", load.name, file, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: the evaluation went on after its context was cancelled", load.name)
		}
		testenv.Eventually(t, time.Minute, func() bool { return !nixevaltest.Alive(pid) },
			"%s: the evaluator %d still runs after the cancellation", load.name, pid)
	}
}

// TestNixNotOnPath cannot run in parallel: it changes the package's
// evaluator command.
func TestNixNotOnPath(t *testing.T) {
	old := NixInstantiate
	NixInstantiate = "nix-instantiate-does-not-exist"
	t.Cleanup(func() { NixInstantiate = old })
	_, err := LoadServices(filepath.Join("testdata", "nix", "services.nix"))
	if err == nil || !strings.Contains(err.Error(), "services.nix") || !strings.Contains(err.Error(), "not on PATH") {
		t.Fatalf("want a clear error naming the file and PATH, got %v", err)
	}
	var me *Error
	if !errors.As(err, &me) {
		t.Errorf("want a *model.Error, got %T", err)
	}
}

func TestNixExactFloats(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	// nix-instantiate 2.8 prints floats with 6 significant digits; the
	// reader must not lose precision.
	file := writeFile(t, dir, "floats.nix", `[ 3.141592653589793 0.1 123456789.123 1.0e-300 (4.9406564584124654e-300 / 1.0e24) 1.7976931348623157e308 (-2.5) 1.0 0.0 100.0 ]`)
	v, err := LoadValue(file, KindPlain, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"3.141592653589793", "0.1", "123456789.123", "1e-300", "5e-324", "1.7976931348623157e+308", "-2.5", "1.0", "0.0", "100.0"}
	got, _ := v.([]any)
	if len(got) != len(want) {
		t.Fatalf("got %v", v)
	}
	for i := range want {
		if got[i] != json.Number(want[i]) {
			t.Errorf("[%d] = %v, want %s", i, got[i], want[i])
		}
	}
}

func TestNixPlainFunctionAndExtraParams(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "policy.nix", `{ factor ? 2, system, ... }: { steps = [ { filter = "x"; n = factor * 3; } ]; sys = builtins.isString system; }`)
	v, err := EvalNix(context.Background(), file, KindPlain, nil, NixOptions{ExtraParams: "{ factor = 5; unused = 1; }"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := CanonicalJSON(v); string(got) != `{"steps":[{"filter":"x","n":15}],"sys":true}` {
		t.Errorf("got %s", got)
	}
}

func TestNixServicesPlainAttrset(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "services.nix", `rec {
  a = { name = "a"; type = "process"; pkg = ./a.sh; };
  b = { name = "b"; type = "process"; dependsOn = [ a ]; connectsTo = { z = a; }; };
}`)
	s, err := LoadServices(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := s["a"].Attrs[AttrPkg]; got != filepath.Join(dir, "a.sh") {
		t.Errorf("pkg = %v", got)
	}
	if s["b"].DependsOn[0] != "a" || s["b"].ConnectsTo[0] != "a" {
		t.Errorf("b = %+v", s["b"])
	}
}

// TestNixServicesPkgUncatchable: a pkg whose evaluation fails in a way
// tryEval cannot catch (a missing file) is dropped, the model still loads.
func TestNixServicesPkgUncatchable(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution}: {
  a = { name = "a"; type = "process"; pkg = import ./does-not-exist.nix { inherit pkgs; }; port = 1; };
}`)
	s, err := LoadServices(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, has := s["a"].Attrs[AttrPkg]; has || s["a"].Attrs["port"] != json.Number("1") {
		t.Errorf("a = %+v", s["a"])
	}
}

func TestNixOptions(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution, basePort ? 1000}: {
  a = { name = "a"; type = "process"; port = basePort + 1; };
}`)
	s, err := LoadServicesContext(context.Background(), svc, NixOptions{ExtraParams: "{ basePort = 8000; other = 1; }"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s["a"].Attrs["port"]; got != json.Number("8001") {
		t.Errorf("port = %v", got)
	}
	infra := Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"hostname": "h", "ip": "10.0.0.1"}},
		"t2": {Name: "t2", Properties: map[string]any{"hostname": "h2", "ip": "10.0.0.2"}},
	}
	dist := writeFile(t, dir, "dist.nix", `{infrastructure}: { a = [ { properties.ip = "10.0.0.2"; } ]; }`)
	d, err := LoadDistributionContext(context.Background(), dist, infra, NixOptions{TargetProperty: "ip"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Targets("a")[0] != "t2" {
		t.Errorf("got %v", d)
	}
	slow := writeFile(t, dir, "slow.nix", `let f = n: if n == 0 then 0 else 1 + f (n - 1) + f (n - 1); in f 60`)
	if _, err := EvalNix(context.Background(), slow, KindPlain, nil, NixOptions{Timeout: 300 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("want a timeout error, got %v", err)
	}
}

// TestNixRealWorldExample reads a model laid out like the Disnix
// StaffTracker example (customPkgs through pkgs.lib.callPackageWith, empty
// dependsOn sets, replicas, a targets record, a secret read from a file).
func TestNixRealWorldExample(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := filepath.Join("testdata", "stafftracker", "deployment", "DistributedDeployment")
	s, err := LoadServices(filepath.Join(dir, "services.nix"))
	if err != nil {
		t.Fatal(err)
	}
	infra, err := LoadInfrastructure(filepath.Join(dir, "infrastructure.nix"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadDistribution(filepath.Join(dir, "distribution.nix"), infra)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.Validate("services.nix"), infra.Validate("infrastructure.nix"), d.Validate("distribution.nix", s, infra)); err != nil {
		t.Fatal(err)
	}
	all := map[string]any{"services": s, "infrastructure": infra, "distribution": d}
	data, err := EncodeJSON(all)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stafftracker.json", data)
}

func TestNixErrorPlaceQuoted(t *testing.T) {
	t.Parallel()
	requireNix(t)
	file := writeFile(t, t.TempDir(), "i.nix", `{ "my host" = { properties.hooks = [ 1 (x: x) ]; }; }`)
	_, err := LoadInfrastructure(file)
	if err == nil || !strings.Contains(err.Error(), `i.nix: "my host".properties.hooks[1]: expected data, got a function`) {
		t.Fatalf("got %v", err)
	}
}

// TestNixReadsOriginalOutputs: the Nix texts the original tools print
// (gendist's function form, the C tools' plain attribute set with quoted
// keys and no trailing newline) read as distributions.
func TestNixReadsOriginalOutputs(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	infra := Infrastructure{
		"testtarget1": {Name: "testtarget1", Properties: map[string]any{"hostname": "testtarget1"}},
		"testtarget2": {Name: "testtarget2", Properties: map[string]any{"hostname": "testtarget2"}},
	}
	gendist := writeFile(t, dir, "gendist.nix", "\n{infrastructure}:\n\n{\n  testService1 = [\n    infrastructure.testtarget1\n  ];\n  testService2 = [\n    infrastructure.testtarget2\n  ];\n  \n}\n\t")
	ctool := writeFile(t, dir, "ctool.nix", "{\n  \"testService1\" = [\n    \"testtarget1\"\n  ];\n  \"testService2\" = [\n  ];\n  \"testService3\" = [\n    {\n      \"target\" = \"testtarget2\";\n      \"container\" = \"c\";\n    }\n  ];\n}")
	for file, want := range map[string]string{
		gendist: `{"testService1":["testtarget1"],"testService2":["testtarget2"]}`,
		ctool:   `{"testService1":["testtarget1"],"testService2":[],"testService3":[{"container":"c","target":"testtarget2"}]}`,
	} {
		d, err := LoadDistribution(file, infra)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := CanonicalJSON(d); string(got) != want {
			t.Errorf("%s: got %s, want %s", filepath.Base(file), got, want)
		}
	}
}
