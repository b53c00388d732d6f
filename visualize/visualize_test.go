package visualize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// vector is one documentation tool vector (a copy of ../shared/vectors'
// visualize-* and document-services-* in testdata/vectors).
type vector struct {
	Name   string `json:"name"`
	Filter string `json:"filter"`
	Args   struct {
		Group            string `json:"group"`
		GroupSubservices bool   `json:"groupSubservices"`
	} `json:"args"`
	Input struct {
		Services       map[string]any `json:"services"`
		Infrastructure map[string]any `json:"infrastructure"`
		Docs           map[string]any `json:"docs"`
	} `json:"input"`
	Expected struct {
		DOT  string `json:"dot"`
		HTML string `json:"html"`
	} `json:"expected"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, _ := filepath.Glob("testdata/vectors/*.json")
	if len(files) == 0 {
		t.Fatal("no vectors in testdata/vectors")
	}
	var out []vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

func services(t *testing.T, v map[string]any) model.Services {
	t.Helper()
	s, err := model.ServicesFromValue(v, "services.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVectors checks the printed DOT and HTML against the original's text.
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			var got, want string
			switch v.Filter {
			case "visualizeInfra":
				infra, err := model.InfrastructureFromValue(v.Input.Infrastructure, "infrastructure.json")
				if err != nil {
					t.Fatal(err)
				}
				got, want = InfraDOT(infra), v.Expected.DOT
			case "visualizeServices":
				got, want = ServicesDOT(services(t, v.Input.Services), v.Args.Group, v.Args.GroupSubservices), v.Expected.DOT
			case "documentServices":
				var docs *Docs
				if v.Input.Docs != nil {
					var err error
					if docs, err = DocsFromValue(v.Input.Docs, "docs.json"); err != nil {
						t.Fatal(err)
					}
				}
				got, want = ServicesHTML(services(t, v.Input.Services), docs, v.Args.Group, v.Args.GroupSubservices), v.Expected.HTML
			default:
				t.Fatalf("unknown tool %q", v.Filter)
			}
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// portalServices are the services of the original's tests/visualize:
// a portal at the root, services/{logging,reporting} below.
func portalServices(t *testing.T) model.Services {
	t.Helper()
	for _, v := range loadVectors(t) {
		if v.Name == "visualize-services-testsuite" {
			return services(t, v.Input.Services)
		}
	}
	t.Fatal("no visualize-services-testsuite vector")
	return nil
}

var (
	nodeLine = regexp.MustCompile(`(?m)^"([^"]+)" \[ label = "[^"]*"(, style=dashed)?`)
	edgeLine = regexp.MustCompile(`(?m)^"([^"]+)" -> "([^"]+)"( \[style=dashed\])?$`)
)

// parseDiagram returns a diagram's nodes (group nodes marked with a
// trailing "/") and edges ("a -> b", "a ~> b" for dashed ones), sorted.
func parseDiagram(dot string) (nodes, edges []string) {
	for _, m := range nodeLine.FindAllStringSubmatch(dot, -1) {
		if m[2] != "" {
			m[1] += "/"
		}
		nodes = append(nodes, m[1])
	}
	for _, m := range edgeLine.FindAllStringSubmatch(dot, -1) {
		arrow := " -> "
		if m[3] != "" {
			arrow = " ~> "
		}
		edges = append(edges, m[1]+arrow+m[2])
	}
	slices.Sort(nodes)
	slices.Sort(edges)
	return nodes, edges
}

// TestGroupDiagrams checks which nodes and edges a group's diagram shows:
// the group's services, what they use (without its edges), who uses them
// (with only the edges into the picture), subgroups collapsed into one
// node with the union of their edges (dydisnix.md §3.9's examples).
func TestGroupDiagrams(t *testing.T) {
	svcs := portalServices(t)
	svcs["reportingapi"].ConnectsTo = []string{"portaldb"}
	for _, c := range []struct {
		name         string
		group        string
		subservices  bool
		nodes, edges []string
	}{
		{"root collapsed", "", true,
			[]string{"portal", "portaldb", "services/"},
			[]string{"portal -> portaldb", "portal -> services", "services ~> portaldb"}},
		{"services collapsed", "services", true,
			[]string{"errordb", "logging/", "portal", "portaldb", "reporting/"},
			[]string{"logging -> errordb", "portal -> logging", "portal -> portaldb", "portal -> reporting", "reporting -> errordb", "reporting ~> portaldb"}},
		{"logging", "services/logging", false,
			[]string{"errordb", "loggingapi", "loggingdb", "portal"},
			[]string{"loggingapi -> errordb", "loggingapi -> loggingdb", "portal -> loggingapi"}},
		{"logging collapsed: nothing below it", "services/logging", true,
			[]string{"errordb", "loggingapi", "loggingdb", "portal"},
			[]string{"loggingapi -> errordb", "loggingapi -> loggingdb", "portal -> loggingapi"}},
		{"reporting: an outside user keeps only its edges into the picture", "services/reporting", false,
			[]string{"errordb", "portal", "portaldb", "reportingapi", "reportingdb"},
			[]string{"portal -> portaldb", "portal -> reportingapi", "reportingapi -> errordb", "reportingapi -> reportingdb", "reportingapi ~> portaldb"}},
		{"unknown group: empty", "nowhere", false, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dot := ServicesDOT(svcs, c.group, c.subservices)
			nodes, edges := parseDiagram(dot)
			if !reflect.DeepEqual(nodes, c.nodes) || !reflect.DeepEqual(edges, c.edges) {
				t.Errorf("nodes %q\nwant  %q\nedges %q\nwant  %q\n%s", nodes, c.nodes, edges, c.edges, dot)
			}
		})
	}
}

// TestOtherBranch: a service of another branch in a group's context
// collapses where its path leaves the group's, as in the original.
func TestOtherBranch(t *testing.T) {
	svcs := portalServices(t)
	svcs["loggingapi"].ConnectsTo = []string{"auditlog"}
	svcs["auditlog"] = &model.Service{Name: "auditlog", Type: "process", Attrs: map[string]any{"group": "audit/deep"}}
	nodes, edges := parseDiagram(ServicesDOT(svcs, "services/logging", true))
	wantNodes := []string{"audit/", "errordb", "loggingapi", "loggingdb", "portal"}
	wantEdges := []string{"loggingapi -> errordb", "loggingapi -> loggingdb", "loggingapi ~> audit", "portal -> loggingapi"}
	if !reflect.DeepEqual(nodes, wantNodes) || !reflect.DeepEqual(edges, wantEdges) {
		t.Errorf("nodes %q, want %q\nedges %q, want %q", nodes, wantNodes, edges, wantEdges)
	}
}

// TestDiagramPages checks the batch diagrams: one per distinct group and
// the root, each grouped at its own level.
func TestDiagramPages(t *testing.T) {
	svcs := portalServices(t)
	var paths []string
	for _, p := range Diagrams(svcs) {
		paths = append(paths, p.Path)
		if want := ServicesDOT(svcs, p.Group, true); p.Content != want {
			t.Errorf("%s is not the collapsed diagram of group %q:\n%s", p.Path, p.Group, p.Content)
		}
	}
	want := []string{"diagram.dot", "services/diagram.dot", "services/logging/diagram.dot", "services/reporting/diagram.dot"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("pages %q, want %q", paths, want)
	}
}

// TestQuoting: names with DOT's special characters stay one quoted
// identifier.
func TestQuoting(t *testing.T) {
	svcs := services(t, map[string]any{
		`a"b`: map[string]any{"name": `a"b`, "type": `t\x`, "dependsOn": []any{"c-d"}},
		"c-d": map[string]any{"name": "c-d"},
	})
	dot := ServicesDOT(svcs, "", false)
	for _, want := range []string{`"a\"b" [ label = "a\"b\n(t\\x)" ]`, `"a\"b" -> "c-d"`} {
		if !strings.Contains(dot, want) {
			t.Errorf("no %s in\n%s", want, dot)
		}
	}
}

func TestWithContainers(t *testing.T) {
	svcs := services(t, map[string]any{
		"web": map[string]any{"name": "web", "type": "process"},
		"db":  map[string]any{"name": "db", "type": "mysql-database"},
		"raw": map[string]any{"name": "raw"},
	})
	dist := model.Distribution{
		"web": {{Target: "t1"}, {Target: "t2", Container: "wrapper", Record: true}},
		"db":  {{Target: "t1"}},
		"raw": {{Target: "t2"}},
	}
	got := WithContainers(dist, svcs)
	want := model.Distribution{
		"web": {{Target: "t1", Container: "process"}, {Target: "t2", Container: "wrapper", Record: true}},
		"db":  {{Target: "t1", Container: "mysql-database"}},
		"raw": {{Target: "t2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if dist["web"][0].Container != "" {
		t.Errorf("the distribution given was changed")
	}
}
