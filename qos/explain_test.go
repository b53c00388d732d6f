package qos

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "explain", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestExplainGolden pins the text and JSON explanation of a few policies.
func TestExplainGolden(t *testing.T) {
	svcs, infra := testModels(t)
	cases := []struct {
		name, policy string
		prev         model.Distribution
	}{
		{"type-zone-roundrobin", `
steps:
  - filter: mapAttrOnList
    name: by type
    serviceProperty: type
    targetPropertyList: supportedTypes
  - filter: mapListOnAttr
    servicePropertyList: zones
    targetProperty: zone
  - filter: mapAttrOnAttr
    serviceProperty: requireZone
    targetProperty: zone
  - filter: order
    targetProperty: priority
  - filter: divideRoundRobin
`, nil},
		{"previous", `
steps:
  - filter: mapStatefulToPrevious
  - filter: mapBoundServicesToPrevious
`, model.Distribution{"web": {{Target: "t2"}}, "db": {{Target: "gone"}}}},
	}
	// zones for mapListOnAttr
	svcs["web"].Attrs["zones"] = []any{"US", "Europe"}
	svcs["db"].Attrs["zones"] = []any{"Europe", "US"}
	svcs["db"].Attrs["requireZone"] = "US"
	svcs["cache"].Attrs["zones"] = []any{"US"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(c.policy), model.FormatYAML, c.name+".yaml")
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Previous: c.prev, Explain: true, Empty: AllowEmpty})
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := res.Explanation.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+".txt", text.Bytes())
			js, err := json.MarshalIndent(res.Explanation, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+".json", append(js, '\n'))
		})
	}
}

func TestExplainOnlyServices(t *testing.T) {
	svcs, infra := testModels(t)
	res, err := (&Policy{}).Run(Input{Services: svcs, Infrastructure: infra, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.Explanation.WriteText(&b, "web", "nosuch"); err != nil {
		t.Fatal(err)
	}
	want := "policy: no steps (the initial candidates are the distribution)\nservice nosuch: not in the distribution\nservice web:\n  candidates: t1, t2, t3\n  chosen: t1, t2, t3\n"
	if b.String() != want {
		t.Fatalf("got\n%s", b.String())
	}
}

func TestExplainGroupsAndSelects(t *testing.T) {
	infra := model.Infrastructure{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		infra[n] = &model.Target{Name: n, Properties: map[string]any{}}
	}
	svcs := model.Services{"s": {Name: "s", Attrs: map[string]any{}}, "u": {Name: "u", Attrs: map[string]any{}}}
	p, err := ParsePolicy([]byte("steps: [{filter: divideRoundRobin}]"), model.FormatYAML, "rr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: true, ExplainServices: []string{"u"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Explanation.Services["s"]; ok || len(res.Explanation.Services) != 1 {
		t.Fatalf("explained %v", res.Explanation.Services)
	}
	var b bytes.Buffer
	if err := res.Explanation.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "policy rr.yaml: 1. divideRoundRobin\nservice u:\n  candidates: a, b, c, d, e\n" +
		"  step 1 divideRoundRobin: removed 4 targets (a, c, d, e): round robin chose b (the candidate after a, the target of s)\n  chosen: b\n"
	if b.String() != want {
		t.Fatalf("got\n%s", b.String())
	}
}
