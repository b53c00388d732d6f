package qos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func TestGraphColVectors(t *testing.T) { algRunVectors(t, "graphcol") }

// TestGraphColValid: on random dependency graphs the colouring is proper
// (linked services on different targets) whenever it succeeds, every service
// gets one target, and it succeeds whenever there are more targets than the
// largest degree.
func TestGraphColValid(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 500; iter++ {
		nS, nT := 1+rng.IntN(25), 1+rng.IntN(6)
		services := model.Services{}
		for i := 0; i < nS; i++ {
			n := fmt.Sprintf("s%02d", i)
			svc := &model.Service{Name: n}
			for j := 0; j < i; j++ {
				if rng.IntN(8) == 0 {
					svc.DependsOn = append(svc.DependsOn, fmt.Sprintf("s%02d", j))
				}
			}
			services[n] = svc
		}
		infra := model.Infrastructure{}
		for j := 0; j < nT; j++ {
			n := fmt.Sprintf("t%d", j)
			infra[n] = &model.Target{Name: n, Properties: map[string]any{"hostname": n}}
		}
		maxDeg := map[string]int{}
		for n, s := range services {
			for _, d := range s.DependsOn {
				maxDeg[n]++
				maxDeg[d]++
			}
		}
		big := 0
		for _, d := range maxDeg {
			big = max(big, d)
		}
		env, _ := algEnv(services, infra, nil)
		out, err := GraphCol{}.Apply(env, FromDistribution(NewStrings(), model.Distribution{}))
		if err != nil {
			if !strings.Contains(err.Error(), "Not enough target machines") {
				t.Fatalf("iter %d: %v", iter, err)
			}
			if nT > big {
				t.Fatalf("iter %d: %d targets, max degree %d, still failed: %v", iter, nT, big, err)
			}
			continue
		}
		d := out.Distribution()
		if len(d) != nS {
			t.Fatalf("iter %d: %d services placed, want %d", iter, len(d), nS)
		}
		for n, s := range services {
			if len(d[n]) != 1 {
				t.Fatalf("iter %d: %s has %v", iter, n, d[n])
			}
			for _, dep := range s.DependsOn {
				if d[n][0] == d[dep][0] {
					t.Fatalf("iter %d: %s and its dependency %s share %s", iter, n, dep, d[n][0].Target)
				}
			}
		}
	}
}

func TestGraphColErrors(t *testing.T) {
	t.Parallel()
	infra := model.Infrastructure{"t": {Name: "t", Properties: map[string]any{}}}
	cases := map[string]struct {
		services model.Services
		infra    model.Infrastructure
		want     string
	}{
		"no services":        {model.Services{}, infra, "no services"},
		"unknown dependency": {model.Services{"a": {Name: "a", DependsOn: []string{"zz"}}}, infra, "dependency zz of a is not in the services model"},
		"no targets":         {model.Services{"a": {Name: "a"}}, model.Infrastructure{}, "Not enough target machines"},
	}
	for name, c := range cases {
		env, _ := algEnv(c.services, c.infra, nil)
		_, err := GraphCol{}.Apply(env, FromDistribution(NewStrings(), model.Distribution{}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func TestGraphColOutputNames(t *testing.T) {
	t.Parallel()
	services := model.Services{"a": {Name: "a", DependsOn: []string{"b"}}, "b": {Name: "b"}}
	infra := model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"hostname": "t1.example.org"}},
		"t2": {Name: "t2", Properties: map[string]any{}},
	}
	cases := []struct {
		prop string
		want map[string]string
	}{
		{"", map[string]string{"a": "t1", "b": "t2"}},
		{"hostname", map[string]string{"a": "t1.example.org", "b": "t2"}}, // t2 has none: attribute name
	}
	for _, c := range cases {
		env, _ := algEnv(services, infra, nil)
		out, err := GraphCol{OutputProperty: c.prop}.Apply(env, FromDistribution(NewStrings(), model.Distribution{}))
		if err != nil {
			t.Fatal(err)
		}
		for s, w := range c.want {
			if got := out.Distribution()[s][0].Target; got != w {
				t.Errorf("outputProperty %q: %s on %s, want %s", c.prop, s, got, w)
			}
		}
	}
}
