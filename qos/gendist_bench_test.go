package qos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// Synthetic models shaped like ../shared/bench/gen_models.py: services
// s0000.. with a weighted type, requireMem 16..1024 and up to three
// dependencies on earlier services; machines m000.. whose supportedTypes
// always hold "process" and every other type with p = 0.5, with mem scaled
// so the problem is feasible, and a cost. Fixed seeds.
var gendistTypes = []string{"process", "wrapper", "mysql-database", "apache-webapplication", "tomcat-webapplication"}

func gendistServices(n int) map[string]any {
	rnd := rand.New(rand.NewPCG(uint64(n), 17))
	out := map[string]any{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s%04d", i)
		r := rnd.Float64()
		typ := gendistTypes[0]
		switch {
		case r < 0.40:
		case r < 0.55:
			typ = gendistTypes[1]
		case r < 0.70:
			typ = gendistTypes[2]
		case r < 0.85:
			typ = gendistTypes[3]
		default:
			typ = gendistTypes[4]
		}
		k := min(i, rnd.IntN(4))
		deps := []any{}
		seen := map[int]bool{}
		for len(deps) < k {
			d := rnd.IntN(i)
			if !seen[d] {
				seen[d] = true
				deps = append(deps, fmt.Sprintf("s%04d", d))
			}
		}
		sort.Slice(deps, func(a, b int) bool { return deps[a].(string) < deps[b].(string) })
		svc := map[string]any{"name": name, "type": typ, "requireMem": 16 + rnd.IntN(1009), "dependsOn": deps}
		if rnd.Float64() < 0.10 {
			svc["stateful"] = true
		}
		out[name] = svc
	}
	return out
}

func gendistInfrastructure(services map[string]any, m int) map[string]any {
	rnd := rand.New(rand.NewPCG(uint64(len(services)), uint64(m)))
	total := 0
	for _, s := range services {
		total += s.(map[string]any)["requireMem"].(int)
	}
	out := map[string]any{}
	for j := 0; j < m; j++ {
		name := fmt.Sprintf("m%03d", j)
		st := []any{"process"}
		for _, t := range gendistTypes[1:] {
			if rnd.Float64() < 0.5 {
				st = append(st, t)
			}
		}
		mem := int((0.5 + rnd.Float64()) * max(1.5*float64(total)/float64(m), 2048))
		out[name] = map[string]any{"properties": map[string]any{
			"hostname": name, "mem": mem, "supportedTypes": st, "cost": 10 + rnd.IntN(91),
		}}
	}
	return out
}

func writeGendistModels(b *testing.B, s, m int) (string, string) {
	dir := b.TempDir()
	svcs := gendistServices(s)
	infra := gendistInfrastructure(svcs, m)
	sf, inf := filepath.Join(dir, "services.json"), filepath.Join(dir, "infrastructure.json")
	for f, v := range map[string]any{sf: svcs, inf: infra} {
		data, err := model.EncodeJSON(v)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return sf, inf
}

// loadGendistModels writes the synthetic models of s services and m
// machines and reads them back.
func loadGendistModels(b *testing.B, s, m int) (model.Services, model.Infrastructure) {
	sf, inf := writeGendistModels(b, s, m)
	svcs, err := model.LoadServices(sf)
	if err != nil {
		b.Fatal(err)
	}
	infra, err := model.LoadInfrastructure(inf)
	if err != nil {
		b.Fatal(err)
	}
	return svcs, infra
}

const gendistPolicy = `
steps:
  - filter: mapAttrOnList
    serviceProperty: type
    targetPropertyList: supportedTypes
  - filter: divideRoundRobin
`

// BenchmarkGendist5000x500 is the whole dydisnix-gendist run on 5000
// services × 500 targets with the type filter + round robin, with the
// calls the command makes: read and validate the models, parse the
// policy, run it, encode the JSON distribution.
func BenchmarkGendist5000x500(b *testing.B) {
	sf, inf := writeGendistModels(b, 5000, 500)
	pf := filepath.Join(b.TempDir(), "qos.yaml")
	if err := os.WriteFile(pf, []byte(gendistPolicy), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		svcs, err := model.LoadServices(sf)
		if err != nil {
			b.Fatal(err)
		}
		if err := svcs.Validate(sf); err != nil {
			b.Fatal(err)
		}
		infra, err := model.LoadInfrastructure(inf)
		if err != nil {
			b.Fatal(err)
		}
		p, err := LoadPolicy(pf)
		if err != nil {
			b.Fatal(err)
		}
		res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Empty: RejectRemoved})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := model.EncodeJSON(res.Distribution); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyRun5000x500 is the pipeline alone (models in memory), and
// the same with explanations.
func BenchmarkPolicyRun5000x500(b *testing.B) {
	svcs, infra := loadGendistModels(b, 5000, 500)
	p, err := ParsePolicy([]byte(gendistPolicy), model.FormatYAML, "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, explain := range []bool{false, true} {
		b.Run(fmt.Sprintf("explain=%v", explain), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: explain}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMapAttrOnListDistinctLists measures the type filter when no two
// services share a candidate list (no result sharing): 5000 × 500 pairs
// looked at one by one.
func BenchmarkMapAttrOnListDistinctLists(b *testing.B) {
	sf, inf := writeGendistModels(b, 5000, 500)
	svcs, _ := model.LoadServices(sf)
	infra, _ := model.LoadInfrastructure(inf)
	names := infra.Names()
	init := model.Distribution{}
	for i, s := range svcs.Names() {
		ms := make([]model.Mapping, len(names))
		for j := range names {
			ms[j] = model.Mapping{Target: names[(i+j)%len(names)]}
		}
		init[s] = ms
	}
	p, _ := ParsePolicy([]byte("steps: [{filter: mapAttrOnList, serviceProperty: type, targetPropertyList: supportedTypes}]"), model.FormatYAML, "b.yaml")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Run(Input{Services: svcs, Infrastructure: infra, Initial: init}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExplainLoopPolicy1000x100 is the scale scenario's policy (the
// demo's: types, previous targets, least loaded) on 1000 services × 100
// targets with explanations, the size at which the loop still explains
// every pair: B/op is about what the coordinator keeps for /status.
func BenchmarkExplainLoopPolicy1000x100(b *testing.B) {
	svcs, infra := loadGendistModels(b, 1000, 100)
	p, err := ParsePolicy([]byte(`
steps:
  - filter: mapAttrOnList
    serviceProperty: type
    targetPropertyList: supportedTypes
  - filter: preferPrevious
  - filter: divideLeastLoaded
`), model.FormatYAML, "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: true}); err != nil {
			b.Fatal(err)
		}
	}
}
