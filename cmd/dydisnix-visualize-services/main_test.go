package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// TestVectors runs the visualize-services vectors (the copy in
// visualize/testdata/vectors) with the command line of
// ../shared/tools/run-vectors.py: stdout must be the original's DOT.
func TestVectors(t *testing.T) {
	files, _ := filepath.Glob("../../visualize/testdata/vectors/visualize-services-*.json")
	if len(files) == 0 {
		t.Fatal("no vectors")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var v struct {
				Args struct {
					Group            string `json:"group"`
					GroupSubservices bool   `json:"groupSubservices"`
				} `json:"args"`
				Input struct {
					Services json.RawMessage `json:"services"`
				} `json:"input"`
				Expected struct {
					DOT string `json:"dot"`
				} `json:"expected"`
			}
			data, _ := os.ReadFile(f)
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			svc := filepath.Join(t.TempDir(), "services.json")
			os.WriteFile(svc, v.Input.Services, 0o644)
			args := []string{"-s", svc}
			if v.Args.Group != "" {
				args = append(args, "--group", v.Args.Group)
			}
			if v.Args.GroupSubservices {
				args = append(args, "--group-subservices")
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 0 || out.String() != v.Expected.DOT {
				t.Errorf("exit %d, stderr %q\ngot\n%s\nwant\n%s", code, errb.String(), out.String(), v.Expected.DOT)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	testenv.NeedCommand(t, "dot")
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring
		stderr string // a substring
		files  []string
	}{
		{"group", []string{"-s", "testdata/services.json", "--group", "services/logging"}, 0, "\"portal\" -> \"loggingapi\"\n", "", nil},
		{"collapsed", []string{"-s", "testdata/services.json", "--group-subservices"}, 0, "\"services\" [ label = \"services\", style=dashed ]", "", nil},
		{"xml", []string{"-s", "../../visualize/testdata/services.xml", "--xml"}, 0, "\"mysql\" [ label = \"mysql &#8594;\\nmysql-database\\n(process)\", peripheries=2 ]", "", nil},
		{"batch svg", []string{"--batch", "-s", "testdata/services.json", "--output-dir", filepath.Join(dir, "out"), "-f", "svg"}, 0, "", "",
			[]string{"out/diagram.dot", "out/diagram.dot.svg", "out/services/diagram.dot.svg", "out/services/logging/diagram.dot.svg"}},
		{"batch dot only", []string{"--batch", "-s", "testdata/services.json", "--output-dir", filepath.Join(dir, "plain")}, 0, "", "",
			[]string{"plain/diagram.dot", "plain/services/logging/diagram.dot"}},
		{"bad image format", []string{"--batch", "-s", "testdata/services.json", "--output-dir", filepath.Join(dir, "bad"), "-f", "nope"}, 1, "", `Format: "nope" not recognized`, nil},
		{"no services", []string{"--group", "x"}, 2, "", "A services expression must be specified! (-s)", nil},
		{"missing file", []string{"-s", "testdata/nope.json"}, 1, "", "testdata/nope.json", nil},
		{"unknown dependency warns", []string{"-s", "testdata/dangling.json"}, 0, "\"a\" -> \"ghost\"", "warning:", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, c.code, out.String(), c.stdout, errb.String(), c.stderr)
			}
			for _, f := range c.files {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("no %s: %v", f, err)
				}
			}
		})
	}
}
