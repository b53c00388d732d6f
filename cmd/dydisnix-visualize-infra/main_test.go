package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// vector is the visualize-infra vector (the copy in
// visualize/testdata/vectors): its infrastructure as a JSON file and its DOT.
func vector(t *testing.T) (jsonFile, dot string) {
	t.Helper()
	data, err := os.ReadFile("../../visualize/testdata/vectors/visualize-infra-testsuite.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Input struct {
			Infrastructure json.RawMessage `json:"infrastructure"`
		} `json:"input"`
		Expected struct {
			DOT string `json:"dot"`
		} `json:"expected"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	jsonFile = filepath.Join(t.TempDir(), "infrastructure.json")
	if err := os.WriteFile(jsonFile, v.Input.Infrastructure, 0o644); err != nil {
		t.Fatal(err)
	}
	return jsonFile, v.Expected.DOT
}

// TestCommandLine: the vector's infrastructure as Nix (real
// nix-instantiate), as Disnix's XML and as the vector's JSON prints the
// original's DOT, which graphviz's dot renders (as tests/docs.nix checks).
func TestCommandLine(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate", "dot")
	jsonFile, want := vector(t)
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout string // exact; "" for none
		stderr string // a substring
	}{
		{"json", []string{"-i", jsonFile}, 0, want, ""},
		{"nix", []string{"-i", "testdata/infrastructure.nix"}, 0, want, ""},
		{"nix with extra params", []string{"-i", "testdata/infrastructure.nix", "--extra-params", "{ extraContainers = { nginx = {}; }; }"}, 0,
			strings.Replace(want, "\"test2:process\"", "\"test2:nginx\" [ label = \"nginx\" ]\n\"test2:process\"", 1), ""},
		{"xml", []string{"-i", "../../visualize/testdata/infrastructure.xml", "--xml"}, 0, want, ""},
		{"no infrastructure", nil, 2, "", "An infrastructure expression must be specified! (-i)"},
		{"not xml", []string{"-i", jsonFile, "--xml"}, 1, "", "not an XML document"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code || out.String() != c.stdout || !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("exit %d (want %d)\nstdout %q\nstderr %q (want %q)", code, c.code, out.String(), errb.String(), c.stderr)
			}
			if code == 0 {
				dot := exec.Command("dot", "-Tpng")
				dot.Stdin = &out
				if img, err := dot.Output(); err != nil || !bytes.HasPrefix(img, []byte("\x89PNG")) {
					t.Errorf("dot -Tpng: %v", err)
				}
			}
		})
	}
}
