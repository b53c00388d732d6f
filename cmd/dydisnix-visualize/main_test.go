package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestGolden(t *testing.T) {
	for _, c := range []struct{ format, dist, golden string }{
		{"dot", "testdata/distribution.json", "testdata/arch.dot"},
		{"svg", "testdata/distribution.json", "testdata/arch.svg"},
	} {
		var out, errb bytes.Buffer
		code := run([]string{"-s", "testdata/services.json", "-i", "testdata/infrastructure.json", "-d", c.dist, "--format", c.format}, &out, &errb)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.format, code, errb.String())
		}
		if *update {
			if err := os.WriteFile(c.golden, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(c.golden)
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != string(want) {
			t.Errorf("%s differs from %s:\n%s", c.format, c.golden, out.String())
		}
	}
}

// TestNixDistribution reads the Disnix distribution function with the real
// nix-instantiate and draws the same picture as from the JSON form.
func TestNixDistribution(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatal("nix-instantiate is required (apt install nix-bin)")
	}
	var a, b, errb bytes.Buffer
	if code := run([]string{"-s", "testdata/services.json", "-i", "testdata/infrastructure.json", "-d", "testdata/distribution.nix"}, &a, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	run([]string{"-s", "testdata/services.json", "-i", "testdata/infrastructure.json", "-d", "testdata/distribution.json"}, &b, &errb)
	if a.String() != b.String() {
		t.Errorf("Nix and JSON distributions draw differently:\n%s\n%s", a.String(), b.String())
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out.dot")
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no services", []string{"-i", "x", "-d", "y"}, 2, "A services expression must be specified! (-s)"},
		{"bad format", []string{"-s", "a", "-i", "b", "-d", "c", "--format", "png"}, 2, "expected dot or svg"},
		{"unknown flag", []string{"--bogus"}, 2, "bogus"},
		{"missing file", []string{"-s", "testdata/nope.json", "-i", "testdata/infrastructure.json", "-d", "testdata/distribution.json"}, 1, "nope.json"},
		{"unknown target", []string{"-s", "testdata/services.json", "-i", "testdata/infrastructure.json", "-d", "testdata/bad-distribution.json", "-o", out}, 1, `target "nowhere"`},
	}
	for _, c := range cases {
		var o, e bytes.Buffer
		if code := run(c.args, &o, &e); code != c.code || !strings.Contains(e.String(), c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, e.String(), c.code, c.msg)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("output file written on error")
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var o, e bytes.Buffer
	if code := run([]string{"-h"}, &o, &e); code != 0 || !strings.Contains(o.String(), "Usage: dydisnix-visualize") {
		t.Errorf("help: %d %q", code, o.String())
	}
}

// TestContainerBoxes: every machine holds a box per container, as Disnix
// deploys (a mapping without a container runs in its service's type), in
// the DOT text and in the SVG picture, with the service inside its box.
func TestContainerBoxes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		format string
		want   []string
	}{
		{"dot", []string{
			"subgraph \"cluster_test1/mysql-database\" {\n      label=\"mysql-database\";",
			"subgraph \"cluster_test1/process\" {\n      label=\"process\";",
			"      \"store@test1\" [label=\"store\"",
			"      \"pong@test3\" [label=\"pong\"",
		}},
		{"svg", []string{
			`<g class="container">`, `>mysql-database</text></g>`, `>process</text></g>`,
		}},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"-s", "testdata/services.json", "-i", "testdata/infrastructure.json", "-d", "testdata/distribution.json", "-f", c.format}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: no %q in\n%s", c.format, w, out.String())
			}
		}
	}
}
