package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/cli/clitest"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func gendistRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(run, args...)
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	return clitest.WriteFile(t, t.TempDir(), name, text)
}

const (
	svcs  = "testdata/services.json"
	infra = "testdata/infrastructure.json"
)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	bad := writeFile(t, "bad.yaml", "steps: [{filter: nope}]")
	missingProp := writeFile(t, "mp.yaml", "steps: [{filter: mapAttrOnAttr, serviceProperty: nosuch, targetProperty: zone}]")
	notList := writeFile(t, "nl.yaml", "steps: [{filter: mapAttrOnList, serviceProperty: type, targetPropertyList: zone}]")
	broken := writeFile(t, "broken.json", `{"a": `)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, 0, "Usage: dydisnix-gendist"},
		{"no services", []string{"-i", infra}, 2, "-s"},
		{"no infrastructure", []string{"-s", svcs}, 2, "-i"},
		{"unknown flag", []string{"-s", svcs, "-i", infra, "--bogus"}, 2, "bogus"},
		{"bad format", []string{"-s", svcs, "-i", infra, "--format", "yaml"}, 2, "json, nix or xml"},
		{"extra argument", []string{"-s", svcs, "-i", infra, "x"}, 2, "unexpected argument"},
		{"unknown filter", []string{"-s", svcs, "-i", infra, "-q", bad}, 1, "unknown filter \"nope\""},
		{"missing property", []string{"-s", svcs, "-i", infra, "-q", missingProp}, 1, "attribute 'nosuch' missing"},
		{"list property not a list", []string{"-s", svcs, "-i", infra, "-q", notList}, 1, "property zone of target testtarget1 is a string, expected a list"},
		{"malformed model", []string{"-s", broken, "-i", infra}, 1, "broken.json"},
		{"missing model", []string{"-s", "nonexistent.json", "-i", infra}, 1, "nonexistent.json"},
		{"unknown builtin", []string{"-s", svcs, "-i", infra, "-q", "builtin:nope"}, 1, "shipped policies"},
		{"ok", []string{"-s", svcs, "-i", infra, "-q", "builtin:by-type"}, 0, ""},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := gendistRun(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, errs)
			}
			if !strings.Contains(out+errs, c.want) {
				t.Fatalf("output lacks %q:\n%s%s", c.want, out, errs)
			}
		})
	}
}

func TestOutputFileAtomicAndNoPartial(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "dist.json")
	if code, _, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", "builtin:by-type-round-robin", "-o", out); code != 0 {
		t.Fatal(errs)
	}
	d, err := model.LoadDistribution(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Targets("testService2"); !reflect.DeepEqual(got, []string{"testtarget2"}) {
		t.Fatalf("testService2 %v", got)
	}
	before, _ := os.ReadFile(out)
	bad := writeFile(t, "q.yaml", "steps: [{filter: mapAttrOnList, serviceProperty: type, targetPropertyList: nosuch}]")
	if code, _, _ := gendistRun(t, "-s", svcs, "-i", infra, "-q", bad, "-o", out); code != 1 {
		t.Fatal("want exit 1")
	}
	after, _ := os.ReadFile(out)
	if !bytes.Equal(before, after) {
		t.Fatal("failed run changed the output file")
	}
	fresh := filepath.Join(dir, "fresh.json")
	gendistRun(t, "-s", svcs, "-i", infra, "-q", bad, "-o", fresh)
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatal("failed run left an output file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("stray files: %v", entries)
	}
}

func TestPreviousForms(t *testing.T) {
	t.Parallel()
	q := writeFile(t, "q.yaml", "steps: [{filter: mapBoundServicesToPrevious}]")
	manifestJSON := writeFile(t, "manifest.json", `{"services": {"h1": {"name": "testService1", "type": "echo"}},
		"serviceMappings": [{"service": "h1", "target": "testtarget2", "container": "echo"}]}`)
	dist := writeFile(t, "prev.yaml", "testService1: [testtarget2]\n")
	for _, prev := range []string{"testdata/manifest.xml", manifestJSON, dist} {
		code, out, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", q, "--previous", prev)
		if code != 0 {
			t.Fatalf("%s: %s", prev, errs)
		}
		var d map[string][]any
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d["testService1"], []any{"testtarget2"}) || len(d["testService3"]) != 2 {
			t.Fatalf("%s: %s", prev, out)
		}
	}
	// a coordinator profile (no extension) holding a manifest
	pdir := t.TempDir()
	xml, _ := os.ReadFile("testdata/manifest.xml")
	if err := os.WriteFile(filepath.Join(pdir, "prod"), xml, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", q, "--coordinator-profile-path", pdir, "-p", "prod")
	if code != 0 || !strings.Contains(out, "\"testService1\": [\n    \"testtarget2\"\n  ]") {
		t.Fatalf("profile: %d %s %s", code, out, errs)
	}
	bad := writeFile(t, "m.xml", `<manifest version="1"></manifest>`)
	if code, _, errs := gendistRun(t, "-s", svcs, "-i", infra, "--previous", bad); code != 1 || !strings.Contains(errs, "version") {
		t.Fatalf("old manifest: %d %s", code, errs)
	}
}

func TestExplainGolden(t *testing.T) {
	t.Parallel()
	code, out, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", "testdata/zone-order-rr.yaml", "--explain", "--explain-service", "testService3", "--explain-service", "testService1")
	if code != 0 {
		t.Fatal(errs)
	}
	if !strings.Contains(out, "testService1") {
		t.Fatal("distribution missing from stdout")
	}
	file := filepath.Join("testdata", "explain-zone-order-rr.golden")
	if *update {
		os.WriteFile(file, []byte(errs), 0o644)
	}
	want, _ := os.ReadFile(file)
	if errs != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", errs, want)
	}
	// JSON explanation into a file
	ef := filepath.Join(t.TempDir(), "why.json")
	if code, _, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", "builtin:by-type-round-robin", "--explain-format", "json", "--explain-output", ef); code != 0 {
		t.Fatal(errs)
	}
	var ex struct {
		Steps    []map[string]any          `json:"steps"`
		Services map[string]map[string]any `json:"services"`
	}
	data, _ := os.ReadFile(ef)
	if err := json.Unmarshal(data, &ex); err != nil || len(ex.Steps) != 2 || len(ex.Services) != 3 {
		t.Fatalf("%v %s", err, data)
	}
}

func TestNoCandidateExit(t *testing.T) {
	t.Parallel()
	q := writeFile(t, "q.yaml", "steps:\n- {filter: mapAttrOnAttr, name: zone, serviceProperty: requireZone, targetProperty: access}\n")
	code, _, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", q)
	if code != 1 || !strings.Contains(errs, "service testService1 has no candidate target left: step 1 (zone)") || !strings.Contains(errs, `requireZone "US" != access "public"`) {
		t.Fatalf("%d %s", code, errs)
	}
	// with --explain the explanation of the failed run is printed too
	code, _, errs = gendistRun(t, "-s", svcs, "-i", infra, "-q", q, "--explain")
	if code != 1 || !strings.Contains(errs, "service testService1:\n  candidates: testtarget1, testtarget2\n") ||
		!strings.Contains(errs, "chosen: none (step 1 (zone) removed the last candidate)") {
		t.Fatalf("%d %s", code, errs)
	}
	code, out, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", q, "--allow-empty")
	if code != 0 || !strings.Contains(out, `"testService1": []`) || !strings.Contains(errs, "warning") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
}

func TestListPolicies(t *testing.T) {
	t.Parallel()
	code, out, _ := gendistRun(t, "--list-policies")
	if code != 0 || !strings.Contains(out, "builtin:by-type-round-robin") || !strings.Contains(out, "builtin:min-cost-cover") {
		t.Fatal(out)
	}
}

func TestNixFormatAndFilterBuildable(t *testing.T) {
	t.Parallel()
	code, out, errs := gendistRun(t, "-s", svcs, "-i", infra, "-q", "builtin:by-type-round-robin", "--format", "nix", "--filter-buildable")
	if code != 0 {
		t.Fatal(errs)
	}
	want := "\n{infrastructure}:\n\n{\n  testService1 = [\n    infrastructure.testtarget1\n  ];\n  testService2 = [\n    infrastructure.testtarget2\n  ];\n  testService3 = [\n    infrastructure.testtarget1\n  ];\n  \n}\n\t"
	if out != want {
		t.Fatalf("%q", out)
	}
}

// TestInvalidModelWarns: an unknown dependency or a dependsOn cycle is
// reported (file and place) but the distribution is still computed, as the
// original tools, which did not check, would.
func TestInvalidModelWarns(t *testing.T) {
	t.Parallel()
	bad := writeFile(t, "services.json", `{
  "a": {"name": "a", "type": "process", "dependsOn": ["b"]},
  "b": {"name": "b", "type": "process", "dependsOn": ["a"]},
  "c": {"name": "c", "type": "process", "dependsOn": ["nosuch"]}
}`)
	code, out, errs := gendistRun(t, "-s", bad, "-i", infra, "-q", "builtin:by-type")
	if code != 0 || !strings.Contains(out, `"c"`) {
		t.Fatalf("exit %d, stdout %s, stderr %s", code, out, errs)
	}
	for _, want := range []string{"warning: " + bad, "nosuch", "cycle", "connectsTo"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
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

// TestNixQoSModelCLI: the original's command lines with Nix models, a QoS
// model and a filter catalog (-F) work unchanged; a services model that
// copies a path into the Nix store evaluates (no read-only evaluation);
// --extra-params reach the services and the QoS model; a QoS model whose
// result is no distribution exits 1 naming the file, leaving no output file.
func TestNixQoSModelCLI(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	dir := t.TempDir()
	clitest.WriteFile(t, dir, "setup.sh", "echo setup\n")
	// A new store path every run (the directory is in the text): the path
	// is only valid in the store if the evaluation copies it there.
	clitest.WriteFile(t, dir, "helper.nix", "# "+dir+"\n{ type = \"process\"; }\n")
	s := clitest.WriteFile(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution, myType ? "process"}:
rec {
  web = { name = "web"; type = myType; setup = "${./setup.sh}"; dependsOn = { inherit db; }; };
  db = { name = "db"; type = (import "${./helper.nix}").type; };
}
`)
	i := clitest.WriteFile(t, dir, "infrastructure.nix", `{
  a = { properties = { hostname = "a"; supportedTypes = [ "process" ]; prio = 2; }; };
  b = { properties = { hostname = "b"; supportedTypes = [ "process" "echo" ]; prio = 1; }; };
}
`)
	head := "{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:\n"
	q := clitest.WriteFile(t, dir, "qos.nix", head+`filters.divideRoundRobin {
  distribution = filters.mapAttrOnList {
    inherit services infrastructure;
    distribution = initialDistribution;
    serviceProperty = "type";
    targetPropertyList = "supportedTypes";
  };
}
`)
	qOrder := clitest.WriteFile(t, dir, "qos-order.nix", "{services, infrastructure, initialDistribution, previousDistribution, filters, lib, prop}:\n"+
		"filters.order { inherit infrastructure; distribution = initialDistribution; targetProperty = prop; }\n")
	qFn := clitest.WriteFile(t, dir, "qos-fn.nix", head+"filters.divideRoundRobin\n")
	qClear := clitest.WriteFile(t, dir, "qos-clear.nix", head+"filters.clear { distribution = initialDistribution; }\n")
	catalog := clitest.WriteFile(t, dir, "filters.nix", "{pkgs, referenceFilters}:\n{ clear = {distribution}: pkgs.lib.mapAttrs (s: ts: []) distribution; }\n")
	cases := []struct {
		name    string
		args    []string
		code    int
		out     string // in stdout
		errs    string // in stderr
		outFile bool   // -o FILE, which must exist exactly on success
	}{
		{name: "the original's command line", args: []string{"-q", q}, out: `"db":["a"],"web":["b"]`},
		{name: "extra params to services and QoS model", args: []string{"-q", qOrder, "--extra-params", `{ myType = "echo"; prop = "prio"; }`}, out: `"db":["b","a"],"web":["b","a"]`},
		{name: "filter catalog", args: []string{"-q", qClear, "-F", catalog}, out: `"db":[],"web":[]`},
		{name: "result is a function", args: []string{"-q", qFn}, code: 1, errs: qFn + ": the QoS model returned a function", outFile: true},
		{name: "catalog with a policy file", args: []string{"-q", "builtin:by-type", "-F", catalog}, code: 1, errs: "filter catalog", outFile: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"-s", s, "-i", i, "--allow-empty"}, c.args...)
			out := filepath.Join(t.TempDir(), "dist.json")
			if c.outFile {
				args = append(args, "-o", out)
			}
			code, stdout, stderr := gendistRun(t, args...)
			compact := strings.Join(strings.Fields(stdout), "")
			if code != c.code || !strings.Contains(compact, c.out) || !strings.Contains(stderr, c.errs) {
				t.Fatalf("exit %d (want %d)\nstdout %s (want %s)\nstderr %s (want %s)", code, c.code, compact, c.out, stderr, c.errs)
			}
			if _, err := os.Stat(out); c.outFile && !os.IsNotExist(err) {
				t.Errorf("a failed run left %s", out)
			}
		})
	}
}

// TestFilterBuildableInstantiates: with a .nix services model,
// --filter-buildable drops the targets for whose system the service's
// package does not instantiate (an assert or a throw), as the original's
// try-build.nix; services depending on such a service keep their targets
// (the original test suite's services-error.nix case, vector
// filter-buildable-testsuite). --extra-params reach that evaluation too.
func TestFilterBuildableInstantiates(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	dir := t.TempDir()
	s := clitest.WriteFile(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution, armOK ? true}:
let
  mk = name: derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };
in
rec {
  testService1B = { name = "testService1B"; type = "echo"; pkg = assert system == "none"; mk "s1b"; };
  testService2 = { name = "testService2"; type = "echo"; dependsOn = { inherit testService1B; }; pkg = {testService1B}: mk "s2"; };
  testService3 = { name = "testService3"; type = "echo"; dependsOn = { inherit testService1B testService2; }; pkg = mk "s3"; };
  onlyArm = { name = "onlyArm"; type = "echo"; pkg = if armOK && system == "aarch64-linux" then mk "arm" else throw "not here"; };
}
`)
	i := clitest.WriteFile(t, dir, "infrastructure.nix", `{
  testtarget1 = { properties = { hostname = "testtarget1"; }; system = "x86_64-linux"; };
  testtarget2 = { properties = { hostname = "testtarget2"; }; system = "aarch64-linux"; };
}
`)
	both := `["testtarget1","testtarget2"]`
	cases := []struct{ extra, want string }{
		{"", `{"onlyArm":["testtarget2"],"testService1B":[],"testService2":` + both + `,"testService3":` + both + `}`},
		{"{ armOK = false; }", `{"onlyArm":[],"testService1B":[],"testService2":` + both + `,"testService3":` + both + `}`},
	}
	for _, c := range cases {
		args := []string{"-s", s, "-i", i, "--filter-buildable", "--allow-empty"}
		if c.extra != "" {
			args = append(args, "--extra-params", c.extra)
		}
		code, out, errs := gendistRun(t, args...)
		if got := strings.Join(strings.Fields(out), ""); code != 0 || got != c.want {
			t.Errorf("extra %q: exit %d\n got %s\nwant %s\n%s", c.extra, code, got, c.want, errs)
		}
	}
}
