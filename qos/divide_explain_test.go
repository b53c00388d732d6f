package qos

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// TestAlgoExplainGolden pins the --explain text of policies using the
// algorithmic filters (golden files testdata/algos/explain-*.txt; rewrite
// them with go test -update).
func TestAlgoExplainGolden(t *testing.T) {
	t.Parallel()
	n := algNum
	services := model.Services{
		"api":   {Name: "api", Type: "process", DependsOn: []string{"db"}, HasDependsOn: true, Attrs: map[string]any{"mem": n(3), "cpu": n(1), "group": "web"}},
		"db":    {Name: "db", Type: "process", Attrs: map[string]any{"mem": n(5), "cpu": n(2)}},
		"web1":  {Name: "web1", Type: "process", DependsOn: []string{"api"}, HasDependsOn: true, Attrs: map[string]any{"mem": n(2), "cpu": n(1), "group": "web"}},
		"web2":  {Name: "web2", Type: "process", DependsOn: []string{"api"}, HasDependsOn: true, Attrs: map[string]any{"mem": n(2), "cpu": n(1), "group": "web"}},
		"cache": {Name: "cache", Type: "process", ConnectsTo: []string{"api"}, HasConnectsTo: true, Attrs: map[string]any{"mem": n(1), "cpu": n(1)}},
	}
	infra := model.Infrastructure{
		"eu1": {Name: "eu1", Properties: map[string]any{"hostname": "eu1", "mem": n(8), "cpu": n(2), "zone": "eu", "cost": n(30)}},
		"eu2": {Name: "eu2", Properties: map[string]any{"hostname": "eu2", "mem": n(4), "cpu": n(4), "zone": "eu", "cost": n(10)}},
		"us1": {Name: "us1", Properties: map[string]any{"hostname": "us1", "mem": n(16), "cpu": n(8), "zone": "us", "cost": n(50)}},
	}
	prev := model.Distribution{"db": {{Target: "us1"}}, "api": {{Target: "gone"}}, "cache": {{Target: "eu2"}}}
	cases := []struct{ name, policy string }{
		{"stability", `{"steps": [
			{"filter": "preferPrevious", "name": "stay", "serviceProperties": ["mem", "cpu"], "targetProperties": ["mem", "cpu"]},
			{"filter": "spread", "targetProperty": "zone"},
			{"filter": "divide", "strategy": "lowest-bidder", "serviceProperties": ["mem", "cpu"], "targetProperties": ["mem", "cpu"]}]}`},
		{"divide-greedy", `{"steps": [{"filter": "divide", "strategy": "greedy", "serviceProperty": "mem", "targetProperty": "mem"}]}`},
		{"divide-highest-bidder", `{"steps": [{"filter": "divide", "strategy": "highest-bidder", "serviceProperty": "mem", "targetProperty": "mem"}]}`},
		{"minsetcover", `{"steps": [{"filter": "minsetcover", "targetProperty": "cost"}]}`},
		{"multiwaycut", `{"steps": [{"filter": "multiwaycut"}]}`},
		{"graphcol", `{"steps": [{"filter": "graphcol"}]}`},
	}
	for _, c := range cases {
		pol, err := ParsePolicy([]byte(c.policy), model.FormatJSON, c.name+".json")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		res, err := pol.Run(Input{Services: services, Infrastructure: infra, Previous: prev, Explain: true})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var b bytes.Buffer
		b.WriteString(algJSON(res.Distribution) + "\n")
		if err := res.Explanation.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join("testdata", "algos", "explain-"+c.name+".txt")
		if *update {
			if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", c.name, file, b.Bytes(), want)
		}
	}
}
