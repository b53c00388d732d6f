package qos

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// FuzzAlgoFilters feeds arbitrary models (JSON input objects of the vector
// format: services, infrastructure, distribution, previousDistribution) to
// every algorithmic filter: whatever the models, a filter returns a result
// or an error, never panics, and a result keeps to the filter's contract
// (divide, minsetcover and multiwaycut choose among the input candidates).
// The plain test run goes through the seed corpus: the vectors' inputs.
func FuzzAlgoFilters(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "algos", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		v, err := model.DecodeValue(data, model.FormatJSON, file)
		if err != nil {
			f.Fatal(err)
		}
		in := v.(map[string]any)["input"]
		f.Add([]byte(algJSON(in)))
	}
	f.Add([]byte(`{"services":{"a":{"req":[1],"dependsOn":["a"]},"b":{"req":"-3","group":"g"}},"infrastructure":{"t":{"properties":{"cap":{"x":1},"zone":["z"]}},"u":{"properties":{"cap":"9z","cost":"-2"}}},"distribution":{"a":[],"b":["t","u",{"target":"u","container":"c"}],"zz":["q"]},"previousDistribution":{"b":["u"],"a":["gone"]}}`))
	filters := []Params{
		{"filter": "divide", "strategy": "greedy", "serviceProperty": "req", "targetProperty": "cap"},
		{"filter": "divide", "strategy": "highest-bidder", "serviceProperties": []any{"req", "mem"}, "targetProperties": []any{"cap", "mem"}},
		{"filter": "divide", "strategy": "lowest-bidder", "serviceProperty": "requireMem", "targetProperty": "mem", "pinnedFirst": true},
		{"filter": "minsetcover", "targetProperty": "cost"},
		{"filter": "multiwaycut"},
		{"filter": "graphcol"},
		{"filter": "graphcol", "outputProperty": "hostname"},
		{"filter": "spread", "targetProperty": "zone"},
		{"filter": "preferPrevious"},
		{"filter": "preferPrevious", "serviceProperty": "req", "targetProperty": "cap"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := model.DecodeValue(data, model.FormatJSON, "fuzz.json")
		if err != nil {
			return
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		var m algModels
		if sv, ok := obj["services"]; ok {
			if m.services, err = model.ServicesFromValue(sv, "s"); err != nil {
				return
			}
		}
		if iv, ok := obj["infrastructure"]; ok {
			if m.infra, err = model.InfrastructureFromValue(iv, "i"); err != nil {
				return
			}
		}
		if dv, ok := obj["distribution"]; ok {
			if m.dist, err = model.DistributionFromValue(dv, "d"); err != nil {
				return
			}
		}
		if pv, ok := obj["previousDistribution"]; ok && pv != nil {
			if m.previous, err = model.DistributionFromValue(pv, "p"); err != nil {
				return
			}
		}
		for _, fp := range filters {
			p := Params{}
			for k, x := range fp {
				if k != "filter" {
					p[k] = x
				}
			}
			spec, _ := DefaultRegistry().Lookup(fp["filter"].(string))
			flt, err := spec.Build(p)
			if err != nil {
				t.Fatalf("%v: %v", fp, err)
			}
			env, _ := algEnv(m.services, m.infra, m.previous)
			in := FromDistribution(NewStrings(), m.dist)
			out, err := flt.Apply(env, in)
			if err != nil {
				continue
			}
			if out == nil || len(out.Lists) != len(out.Services) {
				t.Fatalf("%v: malformed result", fp)
			}
			switch fp["filter"] {
			case "divide", "minsetcover", "multiwaycut", "spread", "preferPrevious":
				for i, list := range out.Lists {
					for _, c := range list {
						if !algHasTarget(in.Lists[i], c.Target) {
							t.Fatalf("%v: %s got non-candidate %s", fp, out.Services[i], out.Strings.Name(c.Target))
						}
					}
				}
			}
		}
	})
}
