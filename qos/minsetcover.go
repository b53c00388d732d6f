package qos

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// MinSetCover is the reference minsetcover filter (dydisnix-minsetcover): the
// greedy approximation of minimum set cover. Each round picks the target
// with the smallest cost per still-uncovered service it can host and gives
// it all of them.
type MinSetCover struct {
	// TargetProperty names the target's cost property (parsed with atoi; 0
	// when absent).
	TargetProperty string
}

var _ Filter = (*MinSetCover)(nil)

var minSetCoverSpec = Spec{
	Name:   "minsetcover",
	Params: []string{"targetProperty"},
	New:    newMinSetCover,
	Pure:   true,
	Doc:    "greedy minimum-cost set cover: pick the cheapest targets per service hosted",
}

func newMinSetCover(p Params) (Filter, error) {
	tp, ok, err := p.Str("targetProperty")
	if err != nil {
		return nil, fmt.Errorf("minsetcover: %w", err)
	}
	if !ok || tp == "" {
		return nil, fmt.Errorf("minsetcover: parameter targetProperty (the cost property) is required")
	}
	return &MinSetCover{TargetProperty: tp}, nil
}

// Apply implements Filter.
//
// The reference recomputes every target's fraction from scratch each round;
// here the uncovered count of a target is kept up to date as services get
// covered, so a run costs O(candidate pairs + rounds × targets) instead of
// O(rounds × candidate pairs). The scan order, the floating-point fraction
// (x/0 = +Inf, 0/0 = NaN seeding the minimum) and the strict "<" are the
// reference's, so the results are the same.
func (f *MinSetCover) Apply(env *Env, in *Candidates) (*Candidates, error) {
	if err := checkTargetNumbers(env.Infrastructure, f.TargetProperty); err != nil {
		return nil, err
	}
	strs := in.Strings
	// Hosts: every target named by a candidate, in byte-wise sorted order.
	// pos maps a Strings index to the host's position (-1: not a host).
	pos := make([]int32, strs.Len())
	for i := range pos {
		pos[i] = -1
	}
	var hostIdx []int32
	for _, list := range in.Lists {
		for _, c := range list {
			if pos[c.Target] < 0 {
				pos[c.Target] = 0
				hostIdx = append(hostIdx, c.Target)
			}
		}
	}
	sort.Slice(hostIdx, func(i, j int) bool { return strs.Name(hostIdx[i]) < strs.Name(hostIdx[j]) })
	for i, t := range hostIdx {
		pos[t] = int32(i)
	}
	nh := len(hostIdx)
	cost := make([]float64, nh)
	for i, t := range hostIdx {
		v, _ := algTargetNumber(env.Infrastructure, strs.Name(t), f.TargetProperty)
		cost[i] = float64(v)
	}
	// hostServices in compressed form: per host its number of uncovered
	// services and its members (one flat array); a service's hosts are its
	// candidate list, duplicates skipped with a stamp.
	uncovered := make([]int, nh)
	seen := make([]int32, nh) // stamp: service index + 1
	for si, list := range in.Lists {
		for _, c := range list {
			if h := pos[c.Target]; seen[h] != int32(si+1) {
				seen[h] = int32(si + 1)
				uncovered[h]++
			}
		}
	}
	total := 0
	for _, n := range uncovered {
		total += n
	}
	memberBuf := make([]int32, total)
	hostMembers := make([][]int32, nh)
	off := 0
	for h := 0; h < nh; h++ {
		hostMembers[h] = memberBuf[off : off : off+uncovered[h]]
		off += uncovered[h]
	}
	clear(seen)
	for si, list := range in.Lists {
		for _, c := range list {
			if h := pos[c.Target]; seen[h] != int32(si+1) {
				seen[h] = int32(si + 1)
				hostMembers[h] = append(hostMembers[h], int32(si))
			}
		}
	}
	clear(seen)

	need := len(env.Services)
	if env.Services == nil {
		need = len(in.Services)
	}
	out := in.Derive()
	picked := make([]Cand, len(in.Services))
	covered := make([]bool, len(in.Services))
	nCovered := 0
	for nCovered < need {
		if nh == 0 {
			return nil, fmt.Errorf("minsetcover: no progress: no candidate targets at all, %d service(s) cannot be covered", need-nCovered)
		}
		chosen := 0
		min := algFrac(cost[0], uncovered[0])
		for h := 1; h < nh; h++ {
			if v := algFrac(cost[h], uncovered[h]); v < min {
				chosen, min = h, v
			}
		}
		if uncovered[chosen] == 0 {
			return nil, f.stallError(env, in, hostIdx[chosen], cost[chosen], covered, nCovered, need)
		}
		ct := hostIdx[chosen]
		gained := uncovered[chosen]
		for _, si := range hostMembers[chosen] {
			if covered[si] {
				continue
			}
			covered[si] = true
			nCovered++
			for _, c := range in.Lists[si] {
				if h := pos[c.Target]; seen[h] != int32(si+1) {
					seen[h] = int32(si + 1)
					uncovered[h]--
				}
			}
			// the service's own candidate naming the chosen target, copied whole
			for _, c := range in.Lists[si] {
				if c.Target == ct {
					picked[si] = c
					out.Lists[si] = picked[si : si+1 : si+1]
					break
				}
			}
			if env.Explaining {
				s := in.Services[si]
				env.Note(s, fmt.Sprintf("covered by %s (%s=%d over %d uncovered services)", strs.Name(ct), f.TargetProperty, int64(cost[chosen]), gained))
				for _, c := range in.Lists[si] {
					if c.Target != ct {
						env.Reject(s, strs.Name(c.Target), fmt.Sprintf("covered by %s (cost per uncovered service %g)", strs.Name(ct), min))
					}
				}
			}
		}
	}
	return out, nil
}

func algFrac(cost float64, uncovered int) float64 {
	if uncovered == 0 {
		switch {
		case cost > 0:
			return math.Inf(1)
		case cost < 0:
			return math.Inf(-1)
		}
		return math.NaN()
	}
	return cost / float64(uncovered)
}

// stallError explains why the reference would loop forever.
func (f *MinSetCover) stallError(env *Env, in *Candidates, chosen int32, cost float64, covered []bool, nCovered, need int) error {
	var never []string
	for si, s := range in.Services {
		if !covered[si] && len(in.Lists[si]) == 0 {
			never = append(never, s+" (no candidate targets)")
		}
	}
	var absent []string
	for name := range env.Services {
		if in.Index(name) < 0 {
			absent = append(absent, name)
		}
	}
	sort.Strings(absent)
	for _, s := range absent {
		never = append(never, s+" (not in the distribution)")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "minsetcover: no progress after covering %d of %d services: ", nCovered, need)
	if len(never) > 0 {
		fmt.Fprintf(&b, "these services can never be covered: %s", strings.Join(never, ", "))
	} else {
		fmt.Fprintf(&b, "target %s (%s=%d) hosts no uncovered service but its cost fraction %s/0 seeds the minimum (the reference loops forever here); give it a positive cost or remove it from the candidates",
			in.Strings.Name(chosen), f.TargetProperty, int64(cost), fmt.Sprint(int64(cost)))
	}
	return fmt.Errorf("%s", b.String())
}
