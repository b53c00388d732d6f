package qos

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func TestMultiwayCutVectors(t *testing.T) { algRunVectors(t, "multiwaycut") }

// literalMultiwayCut transcribes the reference's steps (spec §2.13) literally:
// breadth-first searches per (host, app) pair, discard the heaviest cut, cut
// the rest, re-attach orphans to their first candidate.
func literalMultiwayCut(services model.Services, dist model.Distribution) model.Distribution {
	adj := map[string]map[string]bool{} // node → neighbours; hosts are "h:" + name
	link := func(a, b string) {
		if adj[a] == nil {
			adj[a] = map[string]bool{}
		}
		if adj[b] == nil {
			adj[b] = map[string]bool{}
		}
		adj[a][b], adj[b][a] = true, true
	}
	apps := dist.Names()
	for _, s := range apps {
		if adj[s] == nil {
			adj[s] = map[string]bool{}
		}
		if svc := services[s]; svc != nil {
			for _, d := range svc.Inter() {
				link(s, d)
			}
		}
		for _, m := range dist[s] {
			link(s, "h:"+m.Target)
		}
	}
	var hosts []string
	for n := range adj {
		if strings.HasPrefix(n, "h:") {
			hosts = append(hosts, n)
		}
	}
	sort.Strings(hosts)
	reachesOtherHost := func(from, h string) bool {
		seen := map[string]bool{from: true}
		queue := []string{from}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			if strings.HasPrefix(x, "h:") && x != h {
				return true
			}
			for y := range adj[x] {
				if !seen[y] {
					seen[y] = true
					queue = append(queue, y)
				}
			}
		}
		return false
	}
	cut := map[string][]string{}
	for _, h := range hosts {
		for a := range adj[h] {
			if reachesOtherHost(a, h) {
				cut[h] = append(cut[h], a)
			}
		}
	}
	heavy := ""
	for _, h := range hosts {
		if len(cut[h]) > 0 && (heavy == "" || len(cut[h]) > len(cut[heavy])) {
			heavy = h
		}
	}
	for _, h := range hosts {
		if h == heavy {
			continue
		}
		for _, a := range cut[h] {
			delete(adj[h], a)
			delete(adj[a], h)
		}
	}
	out := model.Distribution{}
	for _, s := range apps {
		var ms []model.Mapping
		for _, m := range dist[s] {
			if adj[s]["h:"+m.Target] && !algListed(ms, m.Target) {
				ms = append(ms, model.Mapping{Target: m.Target})
			}
		}
		if len(ms) == 0 {
			ms = []model.Mapping{dist[s][0]}
		}
		out[s] = ms
	}
	return out
}

func TestMultiwayCutMatchesLiteral(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(21, 42))
	for iter := 0; iter < 2000; iter++ {
		nS, nT := 1+rng.IntN(7), 1+rng.IntN(5)
		services := model.Services{}
		dist := model.Distribution{}
		for i := 0; i < nS; i++ {
			n := fmt.Sprintf("s%d", i)
			svc := &model.Service{Name: n}
			for j := 0; j < i; j++ {
				switch rng.IntN(6) {
				case 0:
					svc.DependsOn = append(svc.DependsOn, fmt.Sprintf("s%d", j))
				case 1:
					svc.ConnectsTo = append(svc.ConnectsTo, fmt.Sprintf("s%d", j))
				}
			}
			services[n] = svc
			var ms []model.Mapping
			for _, k := range rng.Perm(nT)[:1+rng.IntN(nT)] {
				if rng.IntN(2) == 0 || len(ms) == 0 {
					ms = append(ms, model.Mapping{Target: fmt.Sprintf("t%d", k)})
				}
			}
			dist[n] = ms
		}
		env, _ := algEnv(services, nil, nil)
		out, err := MultiwayCut{}.Apply(env, FromDistribution(NewStrings(), dist))
		if err != nil {
			t.Fatal(err)
		}
		want := literalMultiwayCut(services, dist)
		if got := out.Distribution(); !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: services %s dist %s:\n got %s\nwant %s", iter, algJSON(services), algJSON(dist), algJSON(got), algJSON(want))
		}
	}
}

func TestMultiwayCutErrors(t *testing.T) {
	t.Parallel()
	services := model.Services{"a": {Name: "a"}, "b": {Name: "b"}}
	env, _ := algEnv(services, nil, nil)
	_, err := MultiwayCut{}.Apply(env, FromDistribution(NewStrings(), model.Distribution{"a": {{Target: "t"}}, "b": {}}))
	if err == nil || !strings.Contains(err.Error(), "service b has no candidate targets") {
		t.Fatalf("error %v", err)
	}
}
