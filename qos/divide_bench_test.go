package qos

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// Synthetic models with the shapes of shared/bench/gen_models.py (services
// s0000.., machines m000..; type, requireMem 16..1024, 0..3 dependencies on
// earlier services, ~10% stateful; machines with mem scaled so the problem is
// feasible but not trivial, supportedTypes, cost 10..100), generated in Go
// with fixed seeds. The candidates are those left by the type filter
// (mapAttrOnList type/supportedTypes), in sorted target order.

var benchTypes = []string{"process", "wrapper", "mysql-database", "apache-webapplication", "tomcat-webapplication"}
var benchTypeWeights = []float64{0.40, 0.15, 0.15, 0.15, 0.15}

type benchModel struct {
	services model.Services
	infra    model.Infrastructure
	dist     model.Distribution
	cands    *Candidates
	edges    int
}

var (
	benchMu     sync.Mutex
	benchModels = map[[2]int]*benchModel{}
)

func genBenchModel(S, M int) *benchModel {
	benchMu.Lock()
	defer benchMu.Unlock()
	if m := benchModels[[2]int{S, M}]; m != nil {
		return m
	}
	rnd := rand.New(rand.NewPCG(uint64(1000003*S+17), 1))
	services := make(model.Services, S)
	total, totalCPU := 0, 0
	edges := 0
	for i := 0; i < S; i++ {
		name := fmt.Sprintf("s%04d", i)
		r := rnd.Float64()
		typ := benchTypes[len(benchTypes)-1]
		for k, w := range benchTypeWeights {
			if r < w {
				typ = benchTypes[k]
				break
			}
			r -= w
		}
		mem := 16 + rnd.IntN(1009)
		total += mem
		cpu := 1 + (mem*7)%8 // derived, so the random sequence stays that of the generator
		totalCPU += cpu
		svc := &model.Service{Name: name, Type: typ, Attrs: map[string]any{"requireMem": algNum(int64(mem)), "requireCpu": algNum(int64(cpu)), "group": typ}, HasDependsOn: true}
		k := min(i, rnd.IntN(4))
		if k > 0 {
			deps := rnd.Perm(i)[:k]
			sort.Ints(deps)
			for _, d := range deps {
				svc.DependsOn = append(svc.DependsOn, fmt.Sprintf("s%04d", d))
			}
			edges += k
		}
		if rnd.Float64() < 0.10 {
			svc.Attrs["stateful"] = true
		}
		services[name] = svc
	}
	rnd = rand.New(rand.NewPCG(uint64(7919*S+104729*M+3), 2))
	infra := make(model.Infrastructure, M)
	supported := make([]map[string]bool, M)
	for j := 0; j < M; j++ {
		name := fmt.Sprintf("m%03d", j)
		sup := map[string]bool{"process": true}
		for _, t := range benchTypes[1:] {
			if rnd.Float64() < 0.5 {
				sup[t] = true
			}
		}
		supported[j] = sup
		mem := int64(math.Round((0.5 + rnd.Float64()) * math.Max(1.5*float64(total)/float64(M), 2048)))
		infra[name] = &model.Target{Name: name, Properties: map[string]any{
			"hostname": name, "mem": algNum(mem), "cost": algNum(int64(10 + rnd.IntN(91))),
			"zone": fmt.Sprintf("zone%d", j%5),
			"cpu":  algNum(int64(math.Round(1.5 * float64(totalCPU) / float64(M) * (0.5 + float64(j*37%100)/100)))),
		}}
	}
	for _, t := range benchTypes[1:] {
		any := false
		for _, s := range supported {
			any = any || s[t]
		}
		if !any {
			supported[rnd.IntN(M)][t] = true
		}
	}
	for j := 0; j < M; j++ {
		var st []any
		for _, t := range benchTypes {
			if supported[j][t] {
				st = append(st, t)
			}
		}
		infra[fmt.Sprintf("m%03d", j)].Properties["supportedTypes"] = st
	}
	dist := make(model.Distribution, S)
	tnames := infra.Names()
	for name, svc := range services {
		var ms []model.Mapping
		for j, tn := range tnames {
			if supported[j][svc.Type] {
				ms = append(ms, model.Mapping{Target: tn})
			}
		}
		dist[name] = ms
	}
	m := &benchModel{services: services, infra: infra, dist: dist, cands: FromDistribution(NewStrings(), dist), edges: edges}
	benchModels[[2]int{S, M}] = m
	return m
}

var benchScales = [][2]int{{1000, 100}, {5000, 500}}

// benchRun applies f b.N times and returns the last result (nil on error).
func benchRun(b *testing.B, m *benchModel, f Filter) (*Candidates, error) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	var out *Candidates
	var err error
	for i := 0; i < b.N; i++ {
		env := &Env{Services: m.services, Infrastructure: m.infra}
		out, err = f.Apply(env, m.cands)
	}
	b.StopTimer()
	return out, err
}

// benchQuality reports solution quality: targets used, dependency links cut
// (endpoints on different targets), capacity overrun (mem over the targets'
// mem, summed) and total cost (cost of the distinct targets used).
func benchQuality(b *testing.B, m *benchModel, out *Candidates, err error) {
	if err != nil {
		b.ReportMetric(1, "failed")
		b.Logf("failed: %v", err)
		return
	}
	d := out.Distribution()
	used := map[string]int64{}
	placed := map[string]string{}
	for s, ms := range d {
		for _, x := range ms {
			req, _ := algServiceNumber(m.services, s, "requireMem")
			used[x.Target] += req
		}
		if len(ms) > 0 {
			placed[s] = ms[0].Target
		}
	}
	var overrun, cost int64
	for t, u := range used {
		c, _ := algTargetNumber(m.infra, t, "mem")
		overrun += max(0, u-c)
		v, _ := algTargetNumber(m.infra, t, "cost")
		cost += v
	}
	cut := 0
	for s, svc := range m.services {
		for _, dep := range svc.DependsOn {
			if placed[s] != placed[dep] {
				cut++
			}
		}
	}
	b.ReportMetric(float64(len(used)), "targets")
	b.ReportMetric(float64(cut), "cut-edges")
	b.ReportMetric(float64(overrun), "overrun")
	b.ReportMetric(float64(cost), "total-cost")
}

func BenchmarkDivide(b *testing.B) {
	for _, sc := range benchScales {
		for _, strategy := range []string{StrategyGreedy, StrategyHighestBidder, StrategyLowestBidder} {
			b.Run(fmt.Sprintf("%s/%dx%d", strategy, sc[0], sc[1]), func(b *testing.B) {
				m := genBenchModel(sc[0], sc[1])
				f, err := newDivide(Params{"strategy": strategy, "serviceProperty": "requireMem", "targetProperty": "mem"})
				if err != nil {
					b.Fatal(err)
				}
				out, err := benchRun(b, m, f)
				benchQuality(b, m, out, err)
			})
		}
	}
}

// BenchmarkDivideMulti divides over mem and cpu at once.
func BenchmarkDivideMulti(b *testing.B) {
	for _, sc := range benchScales {
		for _, strategy := range []string{StrategyGreedy, StrategyHighestBidder, StrategyLowestBidder} {
			b.Run(fmt.Sprintf("%s/%dx%d", strategy, sc[0], sc[1]), func(b *testing.B) {
				m := genBenchModel(sc[0], sc[1])
				f, err := NewDivide(strategy, []string{"requireMem", "requireCpu"}, []string{"mem", "cpu"})
				if err != nil {
					b.Fatal(err)
				}
				out, err := benchRun(b, m, f)
				benchQuality(b, m, out, err)
				if err == nil {
					used := map[string]int64{}
					for s, ms := range out.Distribution() {
						v, _ := algServiceNumber(m.services, s, "requireCpu")
						used[ms[0].Target] += v
					}
					var over int64
					for t, u := range used {
						c, _ := algTargetNumber(m.infra, t, "cpu")
						over += max(0, u-c)
					}
					b.ReportMetric(float64(over), "cpu-overrun")
				}
			})
		}
	}
}

func BenchmarkMinSetCover(b *testing.B) {
	for _, sc := range benchScales {
		b.Run(fmt.Sprintf("%dx%d", sc[0], sc[1]), func(b *testing.B) {
			m := genBenchModel(sc[0], sc[1])
			f, _ := newMinSetCover(Params{"targetProperty": "cost"})
			out, err := benchRun(b, m, f)
			benchQuality(b, m, out, err)
		})
	}
}

func BenchmarkMultiwayCut(b *testing.B) {
	for _, sc := range benchScales {
		b.Run(fmt.Sprintf("%dx%d", sc[0], sc[1]), func(b *testing.B) {
			m := genBenchModel(sc[0], sc[1])
			out, err := benchRun(b, m, MultiwayCut{})
			b.ReportMetric(float64(m.edges), "edges")
			benchQuality(b, m, out, err)
		})
	}
}

func BenchmarkGraphCol(b *testing.B) {
	for _, sc := range benchScales {
		b.Run(fmt.Sprintf("%dx%d", sc[0], sc[1]), func(b *testing.B) {
			m := genBenchModel(sc[0], sc[1])
			out, err := benchRun(b, m, GraphCol{})
			b.ReportMetric(float64(m.edges), "edges")
			benchQuality(b, m, out, err)
		})
	}
}
