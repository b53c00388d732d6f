package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVectors runs the document-services vectors (the copy in
// visualize/testdata/vectors) with the command line of
// ../shared/tools/run-vectors.py: stdout must be the original's HTML.
func TestVectors(t *testing.T) {
	files, _ := filepath.Glob("../../visualize/testdata/vectors/document-services-*.json")
	if len(files) == 0 {
		t.Fatal("no vectors")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var v struct {
				Input struct {
					Services json.RawMessage `json:"services"`
					Docs     json.RawMessage `json:"docs"`
				} `json:"input"`
				Expected struct {
					HTML string `json:"html"`
				} `json:"expected"`
			}
			data, _ := os.ReadFile(f)
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			svc := filepath.Join(dir, "services.json")
			os.WriteFile(svc, v.Input.Services, 0o644)
			args := []string{"-s", svc}
			if string(v.Input.Docs) != "null" {
				docs := filepath.Join(dir, "docs.json")
				os.WriteFile(docs, v.Input.Docs, 0o644)
				args = append(args, "--docs", docs)
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 0 || out.String() != v.Expected.HTML {
				t.Errorf("exit %d, stderr %q\ngot\n%s\nwant\n%s", code, errb.String(), out.String(), v.Expected.HTML)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr string   // a substring
		files  map[string]string
	}{
		{"group", []string{"-s", "testdata/services.json", "--group", "services", "--group-subservices", "--docs", "testdata/docs.yaml"}, 0,
			[]string{"<td>errordb</td>", `<td><a href="logging/index.html">logging</a></td>`, "<th>Kind</th>"}, "", nil},
		{"xml docs", []string{"-s", "../../visualize/testdata/services.xml", "--docs", "../../visualize/testdata/docs.xml", "--xml"}, 0,
			[]string{"<th>Type</th>", "<td>mysql</td>"}, "", nil},
		{"batch", []string{"--batch", "-s", "testdata/services.json", "--docs", "testdata/docs.yaml", "--output-dir", filepath.Join(dir, "out"), "-f", "png"}, 0, []string{""}, "",
			map[string]string{
				"out/index.html":                  `<img src="diagram.dot.png" alt="Architecture diagram">`,
				"out/services/logging/index.html": "<title>Functional architecture documentation for group: Logging</title>",
				"out/style.css":                   "table",
			}},
		{"bad docs", []string{"-s", "testdata/services.json", "--docs", "testdata/bad-docs.json"}, 1, []string{""}, "testdata/bad-docs.json: fields: expected a list of strings", nil},
		{"no services", []string{"--docs", "x.nix"}, 2, []string{""}, "A services expression must be specified! (-s)", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			ok := code == c.code && strings.Contains(errb.String(), c.stderr)
			for _, s := range c.stdout {
				ok = ok && strings.Contains(out.String(), s)
			}
			if !ok {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, c.code, out.String(), c.stdout, errb.String(), c.stderr)
			}
			if c.code != 0 && out.Len() > 0 {
				t.Errorf("output on error: %q", out.String())
			}
			for f, want := range c.files {
				data, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil || !strings.Contains(string(data), want) {
					t.Errorf("%s: %v, want %q in\n%s", f, err, want, data)
				}
			}
		})
	}
}
