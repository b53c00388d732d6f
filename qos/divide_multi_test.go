package qos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// algEnv builds an Env with explanations recorded.
func algEnv(services model.Services, infra model.Infrastructure, prev model.Distribution) (*Env, *Explanation) {
	ex := &Explanation{}
	return &Env{Services: services, Infrastructure: infra, Previous: prev, Step: "test", Explaining: true, explain: ex}, ex
}

func algNum(n int64) json.Number { return json.Number(fmt.Sprint(n)) }

func TestDivideMultiCapacity(t *testing.T) {
	t.Parallel()
	services := model.Services{
		"s1": {Name: "s1", Attrs: map[string]any{"mem": algNum(4), "cpu": algNum(3)}},
		"s2": {Name: "s2", Attrs: map[string]any{"mem": algNum(4), "cpu": algNum(1)}},
		"s3": {Name: "s3", Attrs: map[string]any{"mem": algNum(1), "cpu": "2"}},
	}
	infra := model.Infrastructure{
		"a": {Name: "a", Properties: map[string]any{"mem": algNum(8), "cpu": algNum(2)}},
		"b": {Name: "b", Properties: map[string]any{"mem": algNum(4), "cpu": algNum(4)}},
		"c": {Name: "c", Properties: map[string]any{"mem": algNum(100)}}, // no cpu: skipped
	}
	all := []model.Mapping{{Target: "c"}, {Target: "a"}, {Target: "b"}}
	dist := model.Distribution{"s1": all, "s2": all, "s3": all}
	cases := []struct {
		strategy string
		want     map[string]string
		wantErr  string
	}{
		// greedy: s1 cpu 3 does not fit a (cpu 2) → b; s2 → a; s3 cpu 2 > a's 1 left, b has mem 0 → error
		{StrategyGreedy, nil, "Unable to select a target machine for service: s3"},
		// highest-bidder: s1 only fits b (b: mem 0, cpu 1); s2 → a; s3: a has cpu 1 → none
		{StrategyHighestBidder, nil, "service: s3"},
	}
	for _, c := range cases {
		f, err := NewDivide(c.strategy, []string{"mem", "cpu"}, []string{"mem", "cpu"})
		if err != nil {
			t.Fatal(err)
		}
		env, _ := algEnv(services, infra, nil)
		_, err = f.Apply(env, FromDistribution(NewStrings(), dist))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want %q", c.strategy, err, c.wantErr)
			}
			continue
		}
	}
	// With room on a: s3 needs cpu 1.
	services["s3"].Attrs["cpu"] = algNum(1)
	want := map[string]map[string]string{
		StrategyGreedy:        {"s1": "b", "s2": "a", "s3": "a"},
		StrategyHighestBidder: {"s1": "b", "s2": "a", "s3": "a"},
		StrategyLowestBidder:  {"s1": "b", "s2": "a", "s3": "a"},
	}
	for strategy, w := range want {
		f, _ := NewDivide(strategy, []string{"mem", "cpu"}, []string{"mem", "cpu"})
		env, ex := algEnv(services, infra, nil)
		out, err := f.Apply(env, FromDistribution(NewStrings(), dist))
		if err != nil {
			t.Fatalf("%s: %v", strategy, err)
		}
		got := map[string]string{}
		for s, ms := range out.Distribution() {
			got[s] = ms[0].Target
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s: got %v, want %v", strategy, got, w)
		}
		rej := ex.Services["s1"].Rejections
		if len(rej) == 0 || !strings.Contains(fmt.Sprint(rej), "no numeric property cpu") {
			t.Errorf("%s: s1 rejections %v should say c has no cpu", strategy, rej)
		}
	}
}

// TestDivideMultiNeverOverruns: whatever the instance, a successful divide
// never uses more than any target's capacity in any dimension, and with
// capacities that can hold everything it always succeeds.
func TestDivideMultiNeverOverruns(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	dims := []string{"mem", "cpu", "disk"}
	for iter := 0; iter < 300; iter++ {
		nS, nT := 1+rng.IntN(12), 1+rng.IntN(5)
		services := model.Services{}
		var names []string
		total := map[string]int64{}
		for i := 0; i < nS; i++ {
			n := fmt.Sprintf("s%02d", i)
			attrs := map[string]any{}
			for _, d := range dims {
				v := int64(rng.IntN(10))
				attrs[d] = algNum(v)
				total[d] += v
			}
			services[n] = &model.Service{Name: n, Attrs: attrs}
			names = append(names, n)
		}
		generous := iter%3 == 0
		infra := model.Infrastructure{}
		for j := 0; j < nT; j++ {
			n := fmt.Sprintf("t%d", j)
			props := map[string]any{}
			for _, d := range dims {
				c := int64(rng.IntN(20))
				if generous {
					c = total[d]
				}
				props[d] = algNum(c)
			}
			infra[n] = &model.Target{Name: n, Properties: props}
		}
		dist := model.Distribution{}
		for _, s := range names {
			var ms []model.Mapping
			for _, tn := range infra.Names() {
				if generous || rng.IntN(3) > 0 {
					ms = append(ms, model.Mapping{Target: tn})
				}
			}
			dist[s] = ms
		}
		for _, strategy := range []string{StrategyGreedy, StrategyHighestBidder, StrategyLowestBidder} {
			f, _ := NewDivide(strategy, dims, dims)
			env, _ := algEnv(services, infra, nil)
			out, err := f.Apply(env, FromDistribution(NewStrings(), dist))
			if err != nil {
				if generous {
					t.Fatalf("iter %d %s: generous capacities failed: %v", iter, strategy, err)
				}
				continue
			}
			used := map[string]map[string]int64{}
			for s, ms := range out.Distribution() {
				if len(ms) != 1 {
					t.Fatalf("iter %d %s: %s got %d targets", iter, strategy, s, len(ms))
				}
				if !algListed(dist[s], ms[0].Target) {
					t.Fatalf("iter %d %s: %s placed on non-candidate %s", iter, strategy, s, ms[0].Target)
				}
				if used[ms[0].Target] == nil {
					used[ms[0].Target] = map[string]int64{}
				}
				for _, d := range dims {
					used[ms[0].Target][d] += model.Atoi(string(services[s].Attrs[d].(json.Number)))
				}
			}
			for tn, u := range used {
				for _, d := range dims {
					c := model.Atoi(string(infra[tn].Properties[d].(json.Number)))
					if u[d] > c {
						t.Fatalf("iter %d %s: %s overrun on %s: %d > %d", iter, strategy, tn, d, u[d], c)
					}
				}
			}
		}
	}
}

func algListed(ms []model.Mapping, target string) bool {
	for _, m := range ms {
		if m.Target == target {
			return true
		}
	}
	return false
}
