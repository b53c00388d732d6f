package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/model"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	opts := augment.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code := run(args, &out, &errb, opts)
	return code, out.String(), errb.String()
}

func TestAugmentInfra(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	infra := write(t, dir, "infra.nix", `{ test1 = { properties = { hostname = "test1"; }; containers.mysql-database = {}; }; test2.properties.hostname = "test2"; }`)
	rules := write(t, dir, "rules.yaml", "rules:\n  - match: {container: mysql-database}\n    set: {containers: {mysql-database: {mysqlPassword: {$env: PW}}}}\n")
	aug := write(t, dir, "augment.nix", `{infrastructure, lib}: lib.mapAttrs (n: t: lib.recursiveUpdate t { properties.augment = "augment"; }) infrastructure`)
	env := map[string]string{"PW": "hunter2"}
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"-h"}, 0, "Usage: dydisnix-augment-infra", ""},
		{"no augment", []string{"-i", infra}, 2, "", "An augment file must be specified!"},
		{"no infrastructure", []string{"-a", rules}, 2, "", "An infrastructure expression must be specified!"},
		{"bad format", []string{"-i", infra, "-a", rules, "--format", "xml"}, 2, "", "--format must be json or nix"},
		{"rules", []string{"-i", infra, "-a", rules}, 0, `"mysqlPassword": "hunter2"`, ""},
		{"explain", []string{"-i", infra, "-a", rules, "--explain"}, 0, "", "test1: + containers.mysql-database.mysqlPassword"},
		{"nix model, nix output", []string{"-i", infra, "-a", aug, "--format", "nix"}, 0, `augment = "augment";`, ""},
		{"missing secret", []string{"-i", infra, "-a", write(t, dir, "r2.json", `{"rules": [{"set": {"properties": {"k": {"$env": "NOPE"}}}}]}`)}, 1, "", "environment variable NOPE is not set"},
		{"broken rules", []string{"-i", infra, "-a", write(t, dir, "r3.yaml", "rules: [")}, 1, "", "r3.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := runCmd(env, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			if strings.Contains(errs, "hunter2") {
				t.Fatalf("stderr shows a secret: %s", errs)
			}
		})
	}
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
