package qos

import (
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// FuzzParsePolicy feeds arbitrary text to the policy reader (YAML and JSON)
// and runs what parses on small models: it must never panic, and every
// error must name the file.
func FuzzParsePolicy(f *testing.F) {
	seeds := []string{
		"steps: []",
		"steps:\n  - filter: mapAttrOnList\n    serviceProperty: type\n    targetPropertyList: supportedTypes\n  - filter: divideRoundRobin\n",
		`{"steps": [{"filter": "order", "targetProperty": "priority", "name": "prio"}]}`,
		`{"steps": [{"filter": "mapAttrOnAttr", "serviceProperty": "requireZone", "targetProperty": "zone"}]}`,
		`{"steps": [{"filter": "mapListOnAttr", "servicePropertyList": "zones", "targetProperty": "zone"}]}`,
		`{"steps": [{"filter": "mapStatefulToPrevious"}, {"filter": "mapBoundServicesToPrevious"}]}`,
		`{"steps": [{"filter": "createCartesianProduct"}, {"filter": "filterBuildable"}]}`,
		`{"steps": [{"filter": "divide", "strategy": "greedy", "serviceProperty": "requireMem", "targetProperty": "mem"}]}`,
		`{"steps": [{"filter": "minsetcover", "targetProperty": "mem"}]}`,
		"steps: [{filter: nope}]",
		"steps: {}",
		"description: x\nsteps:\n- filter: order\n  targetProperty: [1]\n",
		"- a\n- b",
		"&a [*a]",
		"steps: [{filter: order, targetProperty: p, distribution: 1}]",
		`{"steps": [{"filter": 1}]}`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	svcs, err := model.ServicesFromValue(map[string]any{
		"a": map[string]any{"type": "process", "requireMem": "5", "zones": []any{"US"}, "requireZone": "US", "stateful": true},
		"b": map[string]any{"type": "db", "dependsOn": []any{"a"}},
	}, "services")
	if err != nil {
		f.Fatal(err)
	}
	infra, err := model.InfrastructureFromValue(map[string]any{
		"t1": map[string]any{"properties": map[string]any{"supportedTypes": []any{"process", "db"}, "zone": "US", "mem": "10", "priority": "1"}},
		"t2": map[string]any{"properties": map[string]any{"supportedTypes": []any{"process"}, "zone": "EU", "priority": "0"}},
	}, "infrastructure")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, format := range []model.Format{model.FormatYAML, model.FormatJSON} {
			p, err := ParsePolicy([]byte(text), format, "fuzz.policy")
			if err != nil {
				if !strings.Contains(err.Error(), "fuzz.policy") {
					t.Fatalf("error does not name the file: %v", err)
				}
				continue
			}
			for _, st := range p.Steps {
				if st.Filter == "external" {
					return // never run commands from fuzzed input
				}
			}
			_, _ = p.Run(Input{Services: svcs, Infrastructure: infra, Previous: model.Distribution{"a": {{Target: "t2"}}}, Explain: true, Empty: AllowEmpty})
		}
	})
}
