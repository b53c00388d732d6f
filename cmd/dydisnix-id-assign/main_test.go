package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/cli/clitest"
)

const services = `{
  "a": {"name": "a", "requiresUniqueIdsFor": ["ports"]},
  "b": {"name": "b", "requiresUniqueIdsFor": ["ports", "uids"]},
  "c": {"name": "c"}
}`

var write = clitest.WriteFile

func runCmd(args ...string) (int, string, string) { return clitest.Run(run, args...) }

func TestUsageAndExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := write(t, dir, "s.json", services)
	r := write(t, dir, "r.yaml", "ports: {min: 3000, max: 4000}\nuids: {min: 1, max: 1, scope: machine}\n")
	clitest.RunCases(t, run, []clitest.Case{
		clitest.C("help", []string{"-h"}, 0, "Usage: dydisnix-id-assign", ""),
		clitest.C("no services", []string{"--id-resources", r}, 2, "", "A services expression must be specified!"),
		clitest.C("no resources", []string{"-s", s}, 2, "", "An ID resources expression must be specified!"),
		clitest.C("unknown flag", []string{"-s", s, "--id-resources", r, "--bogus"}, 2, "", "unknown flag: --bogus"),
		clitest.C("bad format", []string{"-s", s, "--id-resources", r, "--format", "yaml"}, 2, "", `invalid argument "yaml" for "-f, --format" flag: expected json, nix or xml`),
		clitest.C("-i without -d", []string{"-s", s, "--id-resources", r, "-i", s}, 2, "", "needs -d"),
		clitest.C("missing file", []string{"-s", filepath.Join(dir, "none.json"), "--id-resources", r}, 1, "", "none.json"),
		clitest.C("machine scope in services mode", []string{"-s", s, "--id-resources", r}, 1, "", "Unknown scope: machine"),
		clitest.C("distribution mode", []string{"-s", s, "--id-resources", r, "-d", write(t, dir, "d.json", `{"a": ["t1"], "b": ["t1"]}`)}, 0,
			`"uids": {`+"\n      \"b\": 1", ""),
		clitest.C("missing ids file", []string{"-s", s, "--id-resources", r, "-d", filepath.Join(dir, "d.json"), "--ids", filepath.Join(dir, "none.json")}, 0, `"uids": {`, ""),
		clitest.C("unreadable ids file", []string{"-s", s, "--id-resources", r, "-d", filepath.Join(dir, "d.json"), "--ids", dir}, 1, "", "previous ids file"),
		clitest.C("unknown target", []string{"-s", s, "--id-resources", r, "-i", write(t, dir, "i.json", `{"t2": {"properties": {}}}`), "-d", filepath.Join(dir, "d.json")}, 1,
			"", `a[0]: unknown target "t1": it is not in the infrastructure model`),
	})
}

// TestNixRoundTrip writes ids.nix, reads it back with --ids (evaluated by
// the real nix-instantiate) and gets the same file again.
func TestNixRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := write(t, dir, "s.json", services)
	r := write(t, dir, "r.nix", `{ ports = { min = 3000; max = 4000; step = 2; }; }`)
	ids := filepath.Join(dir, "ids.nix")
	// First run of an --ids F --output-file F cycle: F does not exist yet.
	if code, _, errs := runCmd("-s", s, "--id-resources", r, "--ids", ids, "--format", "nix", "--output-file", ids); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	first, _ := os.ReadFile(ids)
	want := "{\n  \"ids\" = {\n    \"ports\" = {\n      \"a\" = 3000;\n      \"b\" = 3002;\n    };\n  };\n  \"lastAssignments\" = {\n    \"ports\" = 3002;\n  };\n}"
	if string(first) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", first, want)
	}
	if code, _, errs := runCmd("-s", s, "--id-resources", r, "--ids", ids, "--format", "nix", "-o", ids); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	second, _ := os.ReadFile(ids)
	if !bytes.Equal(first, second) {
		t.Fatalf("rerun changed ids.nix:\n%s\n%s", first, second)
	}
}

// TestFailedRunKeepsOldFile checks that a failing assignment or a failing
// write leaves the existing ids file as it was, with no temporary files.
func TestFailedRunKeepsOldFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := write(t, dir, "s.json", services)
	old := `{"ids": {"ports": {"a": 1}}, "lastAssignments": {"ports": 1}}`
	ids := write(t, dir, "ids.json", old)
	small := write(t, dir, "small.json", `{"ports": {"min": 1, "max": 1}}`)
	code, _, errs := runCmd("-s", s, "--id-resources", small, "--ids", ids, "--output-file", ids)
	if code != 1 || !strings.Contains(errs, "The amount of IDs is depleted!") {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	if got, _ := os.ReadFile(ids); string(got) != old {
		t.Fatalf("ids file changed to %s", got)
	}

	// The output path is a non-empty directory: the rename fails.
	target := filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(target, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := write(t, dir, "big.json", `{"ports": {"min": 1, "max": 9}}`)
	if code, _, errs := runCmd("-s", s, "--id-resources", big, "--output-file", target); code != 1 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
		t.Fatalf("output directory damaged: %v", err)
	}
}

// TestDisnixNixModels runs distribution mode on Disnix-style .nix models
// (services function with attribute-set dependencies and an unevaluated
// pkg, a distribution function of the infrastructure) and --extra-params.
func TestDisnixNixModels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := write(t, dir, "services.nix", `{distribution, invDistribution, system, pkgs, portsFor ? []}:
let
  ids = if builtins.pathExists ./ids.nix then (import ./ids.nix).ids else {};
  customPkgs = throw "pkg must not be evaluated";
in
rec {
  db = { name = "db"; pkg = customPkgs.db; type = "process"; requiresUniqueIdsFor = portsFor; };
  web = { name = "web"; pkg = customPkgs.web; type = "process"; dependsOn = { inherit db; };
          port = ids.ports.web or 0; requiresUniqueIdsFor = [ "ports" "uids" ]; };
}`)
	i := write(t, dir, "infrastructure.nix", `{ t1 = { properties.hostname = "t1"; }; t2 = { properties.hostname = "t2"; }; }`)
	d := write(t, dir, "distribution.nix", `{infrastructure}: { db = [ infrastructure.t1 ]; web = [ infrastructure.t1 infrastructure.t2 ]; }`)
	r := write(t, dir, "idresources.nix", `{ ports = { min = 3000; max = 4000; }; uids = { min = 2000; max = 3000; scope = "machine"; }; }`)
	ids := filepath.Join(dir, "ids.nix")
	args := []string{"-s", s, "-i", i, "-d", d, "--id-resources", r, "--ids", ids, "--output-file", ids, "--format", "nix",
		"--extra-params", `{ portsFor = [ "ports" ]; }`}
	if code, _, errs := runCmd(args...); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got, _ := os.ReadFile(ids)
	want := `{
  "ids" = {
    "ports" = {
      "db" = 3000;
      "web" = 3001;
    };
    "uids" = {
      "web" = 2000;
    };
  };
  "lastAssignments" = {
    "ports" = 3001;
  };
  "lastAssignmentsPerTarget" = {
    "t1" = {
      "uids" = 2000;
    };
    "t2" = {
    };
  };
}`
	if string(got) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// The services model now reads its port from ids.nix; a rerun is stable.
	if code, _, errs := runCmd(args...); code != 0 {
		t.Fatalf("rerun: exit %d: %s", code, errs)
	}
	if again, _ := os.ReadFile(ids); string(again) != want {
		t.Fatalf("rerun changed ids.nix:\n%s", again)
	}
}
