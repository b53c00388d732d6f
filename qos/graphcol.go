package qos

import (
	"fmt"
	"sort"

	"github.com/dydisnix/dydisnix/model"
)

// GraphCol is the reference graphcol filter (dydisnix-graphcol): DSatur graph
// colouring of the services' dependency graph, with the infrastructure's
// targets (in sorted order) as colours. Every link between two services
// becomes a network link, using as few machines as possible. It ignores its
// input candidates and places every service of the services model.
type GraphCol struct{}

var _ Filter = GraphCol{}

func init() {
	Register(Spec{
		Name: "graphcol",
		New: func(p Params) (Filter, error) {
			if err := algCheckParams("graphcol", p); err != nil {
				return nil, err
			}
			return GraphCol{}, nil
		},
		Doc: "DSatur graph colouring: linked services on different targets, as few targets as possible",
	})
}

// Apply implements Filter.
//
// Saturation is the reference's: the number of edge entries from a node to
// coloured nodes (not the number of distinct neighbour colours). It is kept
// up to date incrementally; each pick scans the uncoloured nodes once, so a
// run costs O(n² + edges) with a small constant.
func (GraphCol) Apply(env *Env, in *Candidates) (*Candidates, error) {
	names := env.Services.Names()
	n := len(names)
	if n == 0 {
		return nil, fmt.Errorf("graphcol: the services model has no services to colour")
	}
	idx := make(map[string]int32, n)
	for i, s := range names {
		idx[s] = int32(i)
	}
	adj := make([][]int32, n)
	for i, s := range names {
		svc := env.Services[s]
		for _, deps := range [][]string{svc.DependsOn, svc.ConnectsTo} {
			for _, d := range deps {
				j, ok := idx[d]
				if !ok {
					return nil, fmt.Errorf("graphcol: dependency %s of %s is not in the services model", d, s)
				}
				adj[i] = append(adj[i], j)
				adj[j] = append(adj[j], int32(i))
			}
		}
	}
	targets := env.Infrastructure.Names()
	// order: by name, then stably by degree, descending.
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	sort.SliceStable(order, func(a, b int) bool { return len(adj[order[a]]) > len(adj[order[b]]) })

	colour := make([]int32, n)
	for i := range colour {
		colour[i] = -1
	}
	sat := make([]int32, n)
	used := make([]int32, len(targets)+1) // stamp per colour
	stamp := int32(0)
	assign := func(v int32) error {
		stamp++
		for _, u := range adj[v] {
			if c := colour[u]; c >= 0 {
				used[c] = stamp
			}
		}
		c := int32(0)
		for int(c) < len(targets) && used[c] == stamp {
			c++
		}
		if int(c) >= len(targets) {
			return fmt.Errorf("Not enough target machines available to compute a valid graph coloring! (service %s needs a colour different from its %d coloured neighbours; %d targets)", names[v], len(adj[v]), len(targets))
		}
		colour[v] = c
		for _, u := range adj[v] {
			sat[u]++
		}
		return nil
	}
	if err := assign(order[0]); err != nil {
		return nil, err
	}
	// rest: the uncoloured nodes, in order (compacted as nodes get coloured).
	rest := append([]int32(nil), order[1:]...)
	for len(rest) > 0 {
		best, bestPos, count := int32(-1), 0, 0
		for p, v := range rest {
			switch {
			case best < 0 || sat[v] > sat[best]:
				best, bestPos, count = v, p, 1
			case sat[v] == sat[best]:
				count++
			}
		}
		if count > 1 { // no unique maximum: the first uncoloured node in order
			best, bestPos = rest[0], 0
		}
		if err := assign(best); err != nil {
			return nil, err
		}
		rest = append(rest[:bestPos], rest[bestPos+1:]...)
	}

	// Output: the colour's target named by its hostname property (the
	// reference's TODO); the attribute name when it has none.
	hostIdx := make([]int32, len(targets))
	for i, tn := range targets {
		name := tn
		if v, ok := env.Infrastructure[tn].Property("hostname"); ok {
			v, _ = model.ScalarText(v)
			if s, ok := v.(string); ok && s != "" {
				name = s
			}
		}
		hostIdx[i] = in.Strings.Intern(name)
	}
	out := NewCandidates(in.Strings, names)
	for i, s := range names {
		out.Lists[i] = []Cand{{Target: hostIdx[colour[i]], Container: NoContainer}}
		if env.Explaining {
			env.Note(s, fmt.Sprintf("graphcol: colour %d (target %s), %d link(s) to other services", colour[i], targets[colour[i]], len(adj[i])))
			if si := in.Index(s); si >= 0 {
				for _, c := range in.Lists[si] {
					if c.Target != hostIdx[colour[i]] {
						env.Reject(s, in.Strings.Name(c.Target), fmt.Sprintf("graph colouring chose %s", targets[colour[i]]))
					}
				}
			}
		}
	}
	return out, nil
}
