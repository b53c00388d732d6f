package qos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func TestMinSetCoverVectors(t *testing.T) { algRunVectors(t, "minsetcover") }

// naiveMinSetCover is the reference loop, recomputing every fraction from
// scratch each round, with a round limit instead of looping forever.
func naiveMinSetCover(services model.Services, infra model.Infrastructure, dist model.Distribution, prop string) (model.Distribution, error) {
	hostServices := map[string][]string{}
	for _, s := range dist.Names() {
		for _, m := range dist[s] {
			if !contains(hostServices[m.Target], s) {
				hostServices[m.Target] = append(hostServices[m.Target], s)
			}
		}
	}
	var hosts []string
	for h := range hostServices {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	covered := map[string]bool{}
	out := model.Distribution{}
	for s := range dist {
		out[s] = []model.Mapping{}
	}
	for rounds := 0; len(covered) < len(services); rounds++ {
		if rounds > len(hosts)+1 {
			return nil, errors.New("no progress")
		}
		chosen, min := "", 0.0
		for i, h := range hosts {
			cost, _ := algTargetNumber(infra, h, prop)
			n := 0
			for _, s := range hostServices[h] {
				if !covered[s] {
					n++
				}
			}
			f := float64(cost) / float64(n)
			if i == 0 || f < min {
				chosen, min = h, f
			}
		}
		if chosen == "" {
			return nil, errors.New("no progress")
		}
		for _, s := range hostServices[chosen] {
			if !covered[s] {
				covered[s] = true
				out[s] = []model.Mapping{{Target: chosen}}
			}
		}
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestMinSetCoverMatchesNaive(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 9))
	for iter := 0; iter < 2000; iter++ {
		nS, nT := 1+rng.IntN(8), 1+rng.IntN(5)
		services := model.Services{}
		infra := model.Infrastructure{}
		for j := 0; j < nT; j++ {
			n := fmt.Sprintf("t%d", j)
			props := map[string]any{"cost": algNum(int64(rng.IntN(5)))}
			if rng.IntN(8) == 0 {
				delete(props, "cost")
			}
			infra[n] = &model.Target{Name: n, Properties: props}
		}
		dist := model.Distribution{}
		for i := 0; i < nS; i++ {
			n := fmt.Sprintf("s%d", i)
			services[n] = &model.Service{Name: n}
			var ms []model.Mapping
			for _, k := range rng.Perm(nT) {
				if rng.IntN(3) == 0 {
					ms = append(ms, model.Mapping{Target: fmt.Sprintf("t%d", k)})
				}
			}
			if len(ms) == 0 && rng.IntN(4) > 0 {
				ms = []model.Mapping{{Target: "t0"}}
			}
			dist[n] = ms
		}
		want, werr := naiveMinSetCover(services, infra, dist, "cost")
		f, _ := newMinSetCover(Params{"targetProperty": "cost"})
		env, _ := algEnv(services, infra, nil)
		out, err := f.Apply(env, FromDistribution(NewStrings(), dist))
		if (err != nil) != (werr != nil) {
			t.Fatalf("iter %d: error %v, naive %v (dist %s, infra %s)", iter, err, werr, algJSON(dist), algJSON(infra))
		}
		if err != nil {
			if !strings.Contains(err.Error(), "no progress") {
				t.Fatalf("iter %d: error %v lacks \"no progress\"", iter, err)
			}
			continue
		}
		if got := algNorm(out.Distribution()); !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: got %s, naive %s (dist %s)", iter, algJSON(got), algJSON(want), algJSON(dist))
		}
	}
}
