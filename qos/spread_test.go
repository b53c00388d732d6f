package qos

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func spreadInfra() model.Infrastructure {
	return model.Infrastructure{
		"a1": {Name: "a1", Properties: map[string]any{"zone": "A"}},
		"a2": {Name: "a2", Properties: map[string]any{"zone": "A"}},
		"b1": {Name: "b1", Properties: map[string]any{"zone": "B"}},
		"c1": {Name: "c1", Properties: map[string]any{"zone": "C"}},
		"x":  {Name: "x", Properties: map[string]any{}},
	}
}

func spreadSvc(names map[string]string) model.Services {
	s := model.Services{}
	for n, g := range names {
		attrs := map[string]any{}
		if g != "" {
			attrs["group"] = g
		}
		s[n] = &model.Service{Name: n, Attrs: attrs}
	}
	return s
}

func TestSpread(t *testing.T) {
	t.Parallel()
	ms := plainMappings
	cases := []struct {
		name     string
		params   Params
		services map[string]string
		dist     model.Distribution
		want     model.Distribution
		wantErr  string
	}{
		{
			name:     "balanced over zones, the whole zone kept",
			params:   Params{"targetProperty": "zone"},
			services: map[string]string{"w1": "web", "w2": "web", "w3": "web", "w4": "web"},
			dist:     model.Distribution{"w1": ms("a1", "a2", "b1", "c1"), "w2": ms("a1", "a2", "b1", "c1"), "w3": ms("a1", "a2", "b1", "c1"), "w4": ms("a1", "a2", "b1", "c1")},
			want:     model.Distribution{"w1": ms("a1", "a2"), "w2": ms("b1"), "w3": ms("c1"), "w4": ms("a1", "a2")},
		},
		{
			name:     "most constrained first",
			params:   Params{"targetProperty": "zone"},
			services: map[string]string{"s1": "g", "s2": "g"},
			dist:     model.Distribution{"s1": ms("a1", "b1"), "s2": ms("a2")},
			want:     model.Distribution{"s1": ms("b1"), "s2": ms("a2")},
		},
		{
			name:     "groups are independent, ungrouped unchanged",
			params:   Params{"targetProperty": "zone"},
			services: map[string]string{"p": "g1", "q": "g2", "u": ""},
			dist:     model.Distribution{"p": ms("a1", "b1"), "q": ms("a1", "b1"), "u": ms("a1", "b1")},
			want:     model.Distribution{"p": ms("a1"), "q": ms("a1"), "u": ms("a1", "b1")},
		},
		{
			name:     "group parameter selects one group",
			params:   Params{"targetProperty": "zone", "group": "g2"},
			services: map[string]string{"p": "g1", "p2": "g1", "q": "g2", "q2": "g2"},
			dist:     model.Distribution{"p": ms("a1", "b1"), "p2": ms("a1", "b1"), "q": ms("a1", "b1"), "q2": ms("a1", "b1")},
			want:     model.Distribution{"p": ms("a1", "b1"), "p2": ms("a1", "b1"), "q": ms("a1"), "q2": ms("b1")},
		},
		{
			name:     "a target without the property is its own domain",
			params:   Params{"targetProperty": "zone"},
			services: map[string]string{"s1": "g", "s2": "g"},
			dist:     model.Distribution{"s1": ms("x", "a1"), "s2": ms("x", "a1")},
			want:     model.Distribution{"s1": ms("x"), "s2": ms("a1")},
		},
		{
			name:     "missing targetProperty",
			params:   Params{},
			services: map[string]string{},
			dist:     model.Distribution{},
			wantErr:  "targetProperty",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := newSpread(c.params)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			env, _ := algEnv(spreadSvc(c.services), spreadInfra(), nil)
			out, err := f.Apply(env, FromDistribution(NewStrings(), c.dist))
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Distribution(); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", algJSON(got), algJSON(c.want))
			}
		})
	}
}

// TestSpreadBalances: when every member of a group may use every target,
// the numbers of members per zone differ by at most one, and every service
// keeps a non-empty subset of its candidates.
func TestSpreadBalances(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := 0; iter < 200; iter++ {
		nZ, nT, nS, nG := 1+rng.IntN(5), 1+rng.IntN(12), 1+rng.IntN(30), 1+rng.IntN(4)
		infra := model.Infrastructure{}
		zoneOf := map[string]string{}
		var targets []model.Mapping
		for j := 0; j < nT; j++ {
			n := fmt.Sprintf("t%02d", j)
			z := fmt.Sprintf("z%d", rng.IntN(nZ))
			zoneOf[n] = z
			infra[n] = &model.Target{Name: n, Properties: map[string]any{"zone": z}}
			targets = append(targets, model.Mapping{Target: n})
		}
		rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		zones := map[string]bool{}
		for _, z := range zoneOf {
			zones[z] = true
		}
		groups := map[string]string{}
		dist := model.Distribution{}
		for i := 0; i < nS; i++ {
			n := fmt.Sprintf("s%02d", i)
			groups[n] = fmt.Sprintf("g%d", rng.IntN(nG))
			dist[n] = targets
		}
		f, _ := newSpread(Params{"targetProperty": "zone"})
		env, _ := algEnv(spreadSvc(groups), infra, nil)
		out, err := f.Apply(env, FromDistribution(NewStrings(), dist))
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]map[string]int{}
		for s, ms := range out.Distribution() {
			if len(ms) == 0 {
				t.Fatalf("iter %d: %s lost every candidate", iter, s)
			}
			z := zoneOf[ms[0].Target]
			for _, m := range ms {
				if zoneOf[m.Target] != z {
					t.Fatalf("iter %d: %s kept targets of two zones: %v", iter, s, ms)
				}
			}
			if count[groups[s]] == nil {
				count[groups[s]] = map[string]int{}
			}
			count[groups[s]][z]++
		}
		for g, c := range count {
			lo, hi := 1<<30, 0
			for z := range zones {
				lo, hi = min(lo, c[z]), max(hi, c[z])
			}
			if hi-lo > 1 {
				t.Fatalf("iter %d: group %s unbalanced over zones: %v", iter, g, c)
			}
		}
	}
}
