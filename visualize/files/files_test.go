package files

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/visualize"
)

// TestWriteRendersWithDot writes the batch diagrams of a services model
// read from Nix (with the real nix-instantiate) and renders them with the
// real graphviz dot in each format.
func TestWriteRendersWithDot(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate", "dot")
	ctx := context.Background()
	svcs, err := LoadServices(ctx, "testdata/services.nix", false, model.NixOptions{ExtraParams: `{ portalDescription = "The portal"; }`})
	if err != nil {
		t.Fatal(err)
	}
	if got := svcs["portal"].Attrs["description"]; got != "The portal" {
		t.Errorf("--extra-params did not reach the services model: description %v", got)
	}
	for _, c := range []struct {
		format string
		magic  string // how the rendered file starts
	}{
		{"svg", "<?xml"},
		{"png", "\x89PNG"},
	} {
		t.Run(c.format, func(t *testing.T) {
			dir := t.TempDir()
			if err := Write(ctx, dir, visualize.Diagrams(svcs), c.format); err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					got = append(got, filepath.ToSlash(rel))
					if strings.HasSuffix(p, "."+c.format) {
						data, _ := os.ReadFile(p)
						if !strings.HasPrefix(string(data), c.magic) {
							t.Errorf("%s does not start with %q", rel, c.magic)
						}
					}
				}
				return nil
			})
			slices.Sort(got)
			want := []string{"diagram.dot", "diagram.dot." + c.format,
				"services/diagram.dot", "services/diagram.dot." + c.format,
				"services/logging/diagram.dot", "services/logging/diagram.dot." + c.format}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("files %q, want %q", got, want)
			}
		})
	}
}

func TestImageErrors(t *testing.T) {
	testenv.NeedCommand(t, "dot")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.dot")
	bad := filepath.Join(dir, "bad.dot")
	os.WriteFile(good, []byte("digraph G { a -> b }\n"), 0o644)
	os.WriteFile(bad, []byte("digraph G { a -> }\n"), 0o644)
	for _, c := range []struct {
		name, file, format, err string
	}{
		{"unknown format", good, "nope", `dot -Tnope ` + good + `: Format: "nope" not recognized`},
		{"syntax error", bad, "svg", "dot -Tsvg " + bad + ": Error:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := Image(context.Background(), c.file, c.format); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
	t.Run("no dot", func(t *testing.T) {
		old := Dot
		Dot = filepath.Join(dir, "no-such-dot")
		defer func() { Dot = old }()
		if err := Image(context.Background(), good, "svg"); err == nil || !strings.Contains(err.Error(), "is not on PATH (install graphviz") {
			t.Errorf("error %v", err)
		}
	})
}

func TestLoad(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	ctx := context.Background()
	docs, err := LoadDocs(ctx, "testdata/docs.nix", false, model.NixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := &visualize.Docs{Groups: map[string]string{"services": "Services", "services/logging": "Logging"},
		Fields: []string{"description"}, Descriptions: map[string]string{"description": "What it does"}}
	if !reflect.DeepEqual(docs, want) {
		t.Errorf("docs.nix read as %+v", docs)
	}
	for _, c := range []struct {
		name string
		load func() error
		err  string
	}{
		{"missing XML services", func() error { _, err := LoadServices(ctx, "testdata/nope.xml", true, model.NixOptions{}); return err }, "read testdata/nope.xml"},
		{"missing XML infrastructure", func() error {
			_, err := LoadInfrastructure(ctx, "testdata/nope.xml", true, model.NixOptions{})
			return err
		}, "read testdata/nope.xml"},
		{"missing XML docs", func() error { _, err := LoadDocs(ctx, "testdata/nope.xml", true, model.NixOptions{}); return err }, "read testdata/nope.xml"},
		{"docs of the wrong shape", func() error { _, err := LoadDocs(ctx, "testdata/services.nix", false, model.NixOptions{}); return err }, "testdata/services.nix"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.load(); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}
