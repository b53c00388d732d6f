package qos

import (
	"fmt"
	"testing"
)

// BenchmarkSpread spreads the services, grouped by type, over 5 zones and
// reports the worst imbalance of a group (max − min members per zone).
func BenchmarkSpread(b *testing.B) {
	for _, sc := range benchScales {
		b.Run(fmt.Sprintf("%dx%d", sc[0], sc[1]), func(b *testing.B) {
			m := genBenchModel(sc[0], sc[1])
			f, _ := newSpread(Params{"targetProperty": "zone"})
			out, err := benchRun(b, m, f)
			if err != nil {
				b.Fatal(err)
			}
			count := map[string]map[string]int{}
			for si, s := range out.Services {
				g := m.services[s].Attrs["group"].(string)
				z := m.infra[out.Strings.Name(out.Lists[si][0].Target)].Properties["zone"].(string)
				if count[g] == nil {
					count[g] = map[string]int{}
				}
				count[g][z]++
			}
			worst := 0
			for _, c := range count {
				lo, hi := 1<<30, 0
				for z := 0; z < 5; z++ {
					n := c[fmt.Sprintf("zone%d", z)]
					lo, hi = min(lo, n), max(hi, n)
				}
				worst = max(worst, hi-lo)
			}
			b.ReportMetric(float64(worst), "imbalance")
		})
	}
}
