package visual

import (
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

var update = flag.Bool("update", false, "rewrite the golden files")

type example struct {
	Services     map[string]any    `json:"services"`
	Targets      []string          `json:"targets"`
	States       map[string]string `json:"states"`
	Distribution map[string]any    `json:"distribution"`
}

func loadExample(t *testing.T, file string) *Diagram {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ex example
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	svcs, err := model.ServicesFromValue(mustNormalize(t, ex.Services), file)
	if err != nil {
		t.Fatal(err)
	}
	dist, err := model.DistributionFromValue(mustNormalize(t, ex.Distribution), file)
	if err != nil {
		t.Fatal(err)
	}
	return Build(svcs, ex.Targets, dist, ex.States)
}

func mustNormalize(t *testing.T, v any) any {
	t.Helper()
	n, err := model.Normalize(v)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	d := loadExample(t, "testdata/example.json")
	golden(t, "example.dot", d.DOT())
	golden(t, "example.svg", d.SVG())
}

func TestEdges(t *testing.T) {
	t.Parallel()
	d := loadExample(t, "testdata/example.json")
	var solid, dashed int
	for _, e := range d.Edges {
		if e.Dashed {
			dashed++
		} else {
			solid++
		}
	}
	// web×2→store, node1→bootstrap, node2→bootstrap, orphan(unplaced)→store
	if solid != 5 || dashed != 2 {
		t.Errorf("solid %d dashed %d, want 5 and 2", solid, dashed)
	}
	if len(d.Unplaced) != 1 || d.Unplaced[0] != "orphan" {
		t.Errorf("unplaced = %v", d.Unplaced)
	}
}

// TestSVGWellFormed parses the SVG as XML, also with hostile names.
func TestSVGWellFormed(t *testing.T) {
	t.Parallel()
	svcs := model.Services{
		`a<b>&"c'`: {Name: `a<b>&"c'`, DependsOn: []string{"x\ny"}},
		"x\ny":     {Name: "x\ny"},
	}
	dist := model.Distribution{`a<b>&"c'`: {{Target: "t<1>"}}, "x\ny": {{Target: "t2"}}}
	d := Build(svcs, []string{"t<1>", "t2"}, dist, nil)
	dec := xml.NewDecoder(strings.NewReader(d.SVG()))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	dot := d.DOT()
	if strings.Contains(dot, "x\ny") || !strings.Contains(dot, `"a<b>&\"c'@t<1>"`) {
		t.Errorf("DOT quoting wrong:\n%s", dot)
	}
}
