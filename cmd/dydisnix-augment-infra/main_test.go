package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/internal/cli/clitest"
	"github.com/dydisnix/dydisnix/model"
)

var write = clitest.WriteFile

// runWith is the command's run with env as its environment.
func runWith(env map[string]string) clitest.RunFunc {
	opts := augment.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	return func(args []string, stdout, stderr io.Writer) int { return run(args, stdout, stderr, opts) }
}

func runCmd(env map[string]string, args ...string) (int, string, string) {
	return clitest.Run(runWith(env), args...)
}

func TestAugmentInfra(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	infra := write(t, dir, "infra.nix", `{ test1 = { properties = { hostname = "test1"; }; containers.mysql-database = {}; }; test2.properties.hostname = "test2"; }`)
	rules := write(t, dir, "rules.yaml", "rules:\n  - match: {container: mysql-database}\n    set: {containers: {mysql-database: {mysqlPassword: {$env: PW}}}}\n")
	aug := write(t, dir, "augment.nix", `{infrastructure, lib}: lib.mapAttrs (n: t: lib.recursiveUpdate t { properties.augment = "augment"; }) infrastructure`)
	env := map[string]string{"PW": "hunter2"}
	clitest.RunCases(t, runWith(env), []clitest.Case{
		clitest.C("help", []string{"-h"}, 0, "Usage: dydisnix-augment-infra", ""),
		clitest.C("no augment", []string{"-i", infra}, 2, "", "An augment file must be specified!"),
		clitest.C("no infrastructure", []string{"-a", rules}, 2, "", "An infrastructure expression must be specified!"),
		clitest.C("bad format", []string{"-i", infra, "-a", rules, "--format", "xml"}, 2, "", `invalid argument "xml" for "-f, --format" flag: expected json or nix`),
		clitest.C("rules", []string{"-i", infra, "-a", rules}, 0, `"mysqlPassword": "hunter2"`, ""),
		clitest.C("explain", []string{"-i", infra, "-a", rules, "--explain"}, 0, "", "test1: + containers.mysql-database.mysqlPassword"),
		clitest.C("nix model, nix output", []string{"-i", infra, "-a", aug, "--format", "nix"}, 0, `augment = "augment";`, ""),
		clitest.C("missing secret", []string{"-i", infra, "-a", write(t, dir, "r2.json", `{"rules": [{"set": {"properties": {"k": {"$env": "NOPE"}}}}]}`)}, 1, "", "environment variable NOPE is not set"),
		clitest.C("broken rules", []string{"-i", infra, "-a", write(t, dir, "r3.yaml", "rules: [")}, 1, "", "r3.yaml"),
	}, func(t *testing.T, _, stderr string) {
		if strings.Contains(stderr, "hunter2") {
			t.Fatalf("stderr shows a secret: %s", stderr)
		}
	})
}

// TestOutputFile writes the augmented infrastructure as Nix with mode 0600,
// checks that it evaluates back to the same model, and that a failed run
// leaves the existing file alone.
func TestOutputFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	infra := write(t, dir, "infra.json", `{"t": {"properties": {"hostname": "t", "n": 1.5}}}`)
	rules := write(t, dir, "rules.json", `{"rules": [{"set": {"properties": {"secret": {"$env": "PW"}}}}]}`)
	out := filepath.Join(dir, "out.nix")
	if code, _, errs := runCmd(map[string]string{"PW": "x${y}\"z"}, "-i", infra, "-a", rules, "--format", "nix", "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat %v, mode %v", err, st.Mode())
	}
	js, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := model.DecodeValue(js, model.FormatJSON, out)
	want, _ := model.DecodeValue([]byte(`{"t": {"properties": {"hostname": "t", "n": 1.5, "secret": "x${y}\"z"}}}`), model.FormatJSON, "")
	if !model.Equal(got, want) {
		t.Fatalf("evaluated to %s", js)
	}
	before, _ := os.ReadFile(out)
	if code, _, _ := runCmd(nil, "-i", infra, "-a", rules, "-o", out); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Fatal("failed run changed the output file")
	}
}
