package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// TestCatalog builds the catalog as tests/docs.nix does, with and without
// a docs configuration, from a Nix services model (real nix-instantiate,
// --extra-params) and renders the diagrams with the real dot.
func TestCatalog(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate", "dot")
	for _, c := range []struct {
		name  string
		args  []string
		files []string
		want  map[string]string // file → a substring
	}{
		{"svg with docs", []string{"-f", "svg", "--docs", "testdata/docs.nix", "--extra-params", `{ portalDescription = "The portal"; }`},
			[]string{"diagram.dot", "diagram.dot.svg", "index.html", "services/diagram.dot", "services/diagram.dot.svg", "services/index.html",
				"services/logging/diagram.dot", "services/logging/diagram.dot.svg", "services/logging/index.html", "style.css"},
			map[string]string{
				"index.html":                  "<td>The portal</td>",
				"services/index.html":         `<img src="diagram.dot.svg" alt="Architecture diagram">`,
				"services/logging/index.html": "<h1>Logging</h1>",
				"diagram.dot":                 `"portal" -> "services"`,
			}},
		{"png through --image-format, without docs", []string{"--image-format", "png"},
			[]string{"diagram.dot", "diagram.dot.png", "index.html", "services/diagram.dot", "services/diagram.dot.png", "services/index.html",
				"services/logging/diagram.dot", "services/logging/diagram.dot.png", "services/logging/index.html", "style.css"},
			map[string]string{"index.html": "<th>Description</th>", "services/logging/index.html": "<h1>services/logging</h1>"}},
		{"no images", nil,
			[]string{"diagram.dot", "index.html", "services/diagram.dot", "services/index.html", "services/logging/diagram.dot", "services/logging/index.html", "style.css"},
			map[string]string{"index.html": "<td>Portal web application</td>"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var out, errb bytes.Buffer
			args := append([]string{"-s", "testdata/services.nix", "--output-dir", dir}, c.args...)
			if code := run(args, &out, &errb); code != 0 || out.Len() > 0 {
				t.Fatalf("exit %d, stdout %q, stderr %s", code, out.String(), errb.String())
			}
			var got []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					got = append(got, filepath.ToSlash(rel))
				}
				return nil
			})
			slices.Sort(got)
			if !slices.Equal(got, c.files) {
				t.Errorf("files %q\nwant  %q", got, c.files)
			}
			for f, want := range c.want {
				data, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil || !strings.Contains(string(data), want) {
					t.Errorf("%s: %v, want %q in\n%s", f, err, want, data)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no services", []string{"--output-dir", dir}, 2, "A services expression must be specified! (-s)"},
		{"missing docs", []string{"-s", "testdata/services.nix", "--docs", "testdata/nope.json", "--output-dir", dir}, 1, "testdata/nope.json"},
		{"argument", []string{"-s", "x", "y"}, 2, `unexpected argument "y"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, c.code, errb.String(), c.stderr)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("files written on error: %v", entries)
	}
}
