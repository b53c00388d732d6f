package portassign

import (
	"fmt"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// benchModels builds n services spread round robin over m targets; every
// service needs a global and a machine-scoped ID, half are shared-port
// services and half private.
func benchModels(n, m int) (model.Services, model.Distribution) {
	s := model.Services{}
	d := model.Distribution{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc%05d", i)
		kind := "shared"
		if i%2 == 1 {
			kind = "private"
		}
		s[name] = &model.Service{Name: name, Attrs: map[string]any{
			DefaultIDServiceProperty:   []any{"ports", "uids"},
			DefaultPortServiceProperty: kind,
		}}
		d[name] = []model.Mapping{{Target: fmt.Sprintf("t%03d", i%m)}}
	}
	return s, d
}

func BenchmarkAssignIDs(b *testing.B) {
	for _, size := range []struct{ n, m int }{{1000, 100}, {5000, 500}} {
		s, d := benchModels(size.n, size.m)
		res := Resources{
			"ports": {Name: "ports", Min: 10000, Max: 60000, Step: 1, Scope: ScopeGlobal},
			"uids":  {Name: "uids", Min: 2000, Max: 3000, Step: 1, Scope: ScopeMachine},
		}
		prev, err := AssignIDs(IDRequest{Services: s, Distribution: d, Resources: res})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("fresh/%dx%d", size.n, size.m), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := AssignIDs(IDRequest{Services: s, Distribution: d, Resources: res}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("rerun/%dx%d", size.n, size.m), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := AssignIDs(IDRequest{Services: s, Distribution: d, Resources: res, Previous: prev}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAssignPorts(b *testing.B) {
	for _, size := range []struct{ n, m int }{{1000, 100}, {5000, 500}} {
		s, d := benchModels(size.n, size.m)
		global := &Pool{LastPort: 10000, MinPort: 10000, MaxPort: 60000, ServicesToPorts: map[string]int64{}}
		first, err := AssignPorts(PortRequest{Services: s, Distribution: d, Previous: &PortConfiguration{Global: global}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("fresh/%dx%d", size.n, size.m), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := AssignPorts(PortRequest{Services: s, Distribution: d, Previous: &PortConfiguration{Global: global}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("rerun/%dx%d", size.n, size.m), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := AssignPorts(PortRequest{Services: s, Distribution: d, Previous: first.Config}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
