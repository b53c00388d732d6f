package qos

import (
	"fmt"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// BenchmarkPreferPrevious: the previous distribution is greedy divide's
// result; then every tenth machine leaves (its candidates disappear).
// Reports how many services had to move (ideally exactly those that ran on
// the machines that left).
func BenchmarkPreferPrevious(b *testing.B) {
	for _, sc := range benchScales {
		b.Run(fmt.Sprintf("%dx%d", sc[0], sc[1]), func(b *testing.B) {
			m := genBenchModel(sc[0], sc[1])
			div, _ := newDivide(Params{"strategy": "greedy", "serviceProperty": "requireMem", "targetProperty": "mem"})
			prevC, err := div.Apply(&Env{Services: m.services, Infrastructure: m.infra}, m.cands)
			if err != nil {
				b.Fatal(err)
			}
			prev := prevC.Distribution()
			left := map[string]bool{}
			for j := 0; j < sc[1]; j += 10 {
				left[fmt.Sprintf("m%03d", j)] = true
			}
			dist := model.Distribution{}
			mustMove := 0
			for s, ms := range m.dist {
				var keep []model.Mapping
				for _, x := range ms {
					if !left[x.Target] {
						keep = append(keep, x)
					}
				}
				dist[s] = keep
				if left[prev[s][0].Target] {
					mustMove++
				}
			}
			cands := FromDistribution(NewStrings(), dist)
			f, _ := newPreferPrevious(Params{"serviceProperty": "requireMem", "targetProperty": "mem"})
			b.ReportAllocs()
			b.ResetTimer()
			var out *Candidates
			for i := 0; i < b.N; i++ {
				out, err = f.Apply(&Env{Services: m.services, Infrastructure: m.infra, Previous: prev}, cands)
			}
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			moved := 0
			for si, s := range out.Services {
				if l := out.Lists[si]; len(l) != 1 || out.Strings.Name(l[0].Target) != prev[s][0].Target {
					moved++
				}
			}
			b.ReportMetric(float64(moved), "moved")
			b.ReportMetric(float64(mustMove), "lost-machine-services")
		})
	}
}
