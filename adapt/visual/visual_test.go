package visual

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"

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

var (
	targetRectRE = regexp.MustCompile(`<g class="target[^"]*" id="[^"]*"><rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"`)
	pathRE       = regexp.MustCompile(`<path class="(?:dependsOn|connectsTo)" d="([^"]*)"`)
	numPairRE    = regexp.MustCompile(`(-?[\d.]+),(-?[\d.]+)`)
)

// TestSVGEdgesAvoidBoxes checks that no edge of the built-in layout passes
// over a target box other than those of its two ends: the polyline through
// every point of a path (its corners, or a curve's control points) is
// sampled and tested against the boxes.
func TestSVGEdgesAvoidBoxes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		targets []string
		dist    model.Distribution
		svcs    model.Services
	}{
		{
			name:    "over the middle box of a row",
			targets: []string{"a", "b", "c"},
			svcs:    model.Services{"x": {Name: "x", DependsOn: []string{"z"}}, "y": {Name: "y"}, "z": {Name: "z", ConnectsTo: []string{"x"}}},
			dist:    model.Distribution{"x": {{Target: "a"}}, "y": {{Target: "b"}}, "z": {{Target: "c"}}},
		},
		{
			name:    "across rows",
			targets: []string{"a", "b", "c", "d", "e", "f"},
			svcs: model.Services{"s1": {Name: "s1", DependsOn: []string{"s6", "s4"}}, "s2": {Name: "s2"}, "s3": {Name: "s3"},
				"s4": {Name: "s4"}, "s5": {Name: "s5", DependsOn: []string{"s3"}}, "s6": {Name: "s6", DependsOn: []string{"s2"}}},
			dist: model.Distribution{"s1": {{Target: "a"}}, "s2": {{Target: "b"}}, "s3": {{Target: "c"}},
				"s4": {{Target: "d"}}, "s5": {{Target: "e"}}, "s6": {{Target: "f"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svg := Build(tt.svcs, tt.targets, tt.dist, nil).SVG()
			var boxes [][4]float64
			for _, m := range targetRectRE.FindAllStringSubmatch(svg, -1) {
				var r [4]float64
				for i := range r {
					r[i], _ = strconv.ParseFloat(m[i+1], 64)
				}
				boxes = append(boxes, r)
			}
			inside := func(r [4]float64, x, y float64) bool {
				return x > r[0]+1 && x < r[0]+r[2]-1 && y > r[1]+1 && y < r[1]+r[3]-1
			}
			paths := pathRE.FindAllStringSubmatch(svg, -1)
			if len(boxes) != len(tt.targets) || len(paths) == 0 {
				t.Fatalf("%d boxes, %d paths in\n%s", len(boxes), len(paths), svg)
			}
			for _, p := range paths {
				var pts [][2]float64
				for _, m := range numPairRE.FindAllStringSubmatch(p[1], -1) {
					x, _ := strconv.ParseFloat(m[1], 64)
					y, _ := strconv.ParseFloat(m[2], 64)
					pts = append(pts, [2]float64{x, y})
				}
				first, last := pts[0], pts[len(pts)-1]
				for _, r := range boxes {
					if inside(r, first[0], first[1]) || inside(r, last[0], last[1]) {
						continue
					}
					for i := 1; i < len(pts); i++ {
						a, b := pts[i-1], pts[i]
						for s := 0.0; s <= 1; s += 0.01 {
							if x, y := a[0]+(b[0]-a[0])*s, a[1]+(b[1]-a[1])*s; inside(r, x, y) {
								t.Fatalf("edge %s crosses the box at %v", p[1], r)
							}
						}
					}
				}
			}
		})
	}
}

// TestRenderWithDot lays the picture out with Graphviz's dot: containers
// are clusters inside their target's cluster.
func TestRenderWithDot(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "dot")
	svcs := model.Services{"web": {Name: "web", DependsOn: []string{"db"}}, "db": {Name: "db"}}
	dist := model.Distribution{"web": {{Target: "a", Container: "tomcat"}}, "db": {{Target: "b", Container: "mysql"}}}
	d := Build(svcs, []string{"a", "b"}, dist, map[string]string{"b": "down"})
	d.Marks = map[Node]string{{"web", "a"}: MarkMoved + "from b"}
	svg := d.Render(context.Background())
	for _, want := range []string{"<svg", "cluster_a/tomcat", "b (down)", "from b", `id="web@a"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("dot's SVG lacks %q:\n%s", want, svg)
		}
	}
}
