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
type GraphCol struct {
	// OutputProperty, when set (the reference uses "hostname"), names each
	// chosen target by the value of that property instead of its attribute
	// name. The default, the attribute name, is what the rest of the
	// pipeline and the distribution writer expect.
	OutputProperty string
}

var _ Filter = GraphCol{}

var graphColSpec = Spec{
	Name:   "graphcol",
	Params: []string{"outputProperty"},
	New: func(p Params) (Filter, error) {
		op, _, err := p.Str("outputProperty")
		if err != nil {
			return nil, fmt.Errorf("graphcol: %w", err)
		}
		return GraphCol{OutputProperty: op}, nil
	},
	Pure: true,
	Doc:  "DSatur graph colouring: linked services on different targets, as few targets as possible",
}

// Apply implements Filter.
//
// Saturation is the reference's: the number of edge entries from a node to
// coloured nodes (not the number of distinct neighbour colours). It is kept
// up to date incrementally in saturation buckets, so a run costs
// O(n log n + edges) (the log from sorting the initial order).
func (g GraphCol) Apply(env *Env, in *Candidates) (*Candidates, error) {
	names := env.Services.Names()
	n := len(names)
	if n == 0 {
		return nil, fmt.Errorf("graphcol: the services model has no services to colour")
	}
	idx := make(map[string]int32, n)
	for i, s := range names {
		idx[s] = int32(i)
	}
	// Adjacency in one flat array (an entry per edge end, duplicates kept).
	deg := make([]int32, n)
	for i, s := range names {
		svc := env.Services[s]
		if svc == nil {
			continue
		}
		for _, deps := range [][]string{svc.DependsOn, svc.ConnectsTo} {
			for _, d := range deps {
				j, ok := idx[d]
				if !ok {
					return nil, fmt.Errorf("graphcol: dependency %s of %s is not in the services model", d, s)
				}
				deg[i]++
				deg[j]++
			}
		}
	}
	total := 0
	for _, d := range deg {
		total += int(d)
	}
	buf := make([]int32, total)
	adj := make([][]int32, n)
	off := 0
	for i, d := range deg {
		adj[i] = buf[off : off : off+int(d)]
		off += int(d)
	}
	for i, s := range names {
		svc := env.Services[s]
		if svc == nil {
			continue
		}
		for _, deps := range [][]string{svc.DependsOn, svc.ConnectsTo} {
			for _, d := range deps {
				j := idx[d]
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
	// Uncoloured nodes are kept in buckets by saturation (intrusive doubly
	// linked lists), so the unique-maximum test and the pick are O(1)
	// amortised; the fallback "first uncoloured node in order" is a cursor
	// that only moves forward.
	maxSat := 0
	for _, l := range adj {
		maxSat = max(maxSat, len(l))
	}
	head := make([]int32, maxSat+2)
	for i := range head {
		head[i] = -1
	}
	count := make([]int32, maxSat+2)
	next := make([]int32, n)
	prev := make([]int32, n)
	push := func(v int32) {
		s := sat[v]
		prev[v], next[v] = -1, head[s]
		if head[s] >= 0 {
			prev[head[s]] = v
		}
		head[s] = v
		count[s]++
	}
	unlink := func(v int32) {
		s := sat[v]
		if prev[v] >= 0 {
			next[prev[v]] = next[v]
		} else {
			head[s] = next[v]
		}
		if next[v] >= 0 {
			prev[next[v]] = prev[v]
		}
		count[s]--
	}
	for _, v := range order {
		push(v)
	}
	top := 0 // highest saturation with uncoloured nodes (an upper bound)
	cursor := 0
	colourNode := func(v int32) error {
		unlink(v)
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
			return fmt.Errorf("Not enough target machines available to compute a valid graph coloring! (service %s has %d link(s) to services using all %d targets)", names[v], len(adj[v]), len(targets))
		}
		colour[v] = c
		for _, u := range adj[v] {
			if colour[u] < 0 && u != v {
				unlink(u)
				sat[u]++
				push(u)
				top = max(top, int(sat[u]))
			} else {
				sat[u]++
			}
		}
		return nil
	}
	if err := colourNode(order[0]); err != nil {
		return nil, err
	}
	for left := n - 1; left > 0; left-- {
		for top > 0 && count[top] == 0 {
			top--
		}
		var v int32
		if count[top] == 1 {
			v = head[top]
		} else {
			for colour[order[cursor]] >= 0 {
				cursor++
			}
			v = order[cursor]
		}
		if err := colourNode(v); err != nil {
			return nil, err
		}
	}

	// Output: the colour's target, by attribute name, or by the value of
	// OutputProperty (the reference's "hostname", a TODO there) when set
	// and the target has it.
	hostIdx := make([]int32, len(targets))
	for i, tn := range targets {
		name := tn
		if g.OutputProperty == "" {
			hostIdx[i] = in.Strings.Intern(name)
			continue
		}
		if v, ok := env.Infrastructure[tn].Property(g.OutputProperty); ok {
			v, _ = model.ScalarText(v)
			if s, ok := v.(string); ok && s != "" {
				name = s
			}
		}
		hostIdx[i] = in.Strings.Intern(name)
	}
	out := NewCandidates(in.Strings, names)
	picked := make([]Cand, n)
	for i, s := range names {
		picked[i] = Cand{Target: hostIdx[colour[i]], Container: NoContainer}
		out.Lists[i] = picked[i : i+1 : i+1]
		if env.Explaining {
			env.Note(s, fmt.Sprintf("colour %d (target %s), %d link(s) to other services", colour[i], targets[colour[i]], len(adj[i])))
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
