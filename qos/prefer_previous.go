package qos

import (
	"fmt"
	"sort"
	"strings"
)

// PreferPrevious is a stability step: given the previous distribution
// (Env.Previous, from --previous), every service whose previous target is
// still among its candidates keeps only that target (all of them, when it
// ran on several), so a change in the network moves as few services as
// possible. A service whose previous targets are all gone keeps its
// candidates for the following steps to choose from; the step notes it as
// moved, and --explain lists it.
//
// With capacity parameters (as divide's: serviceProperty/targetProperty or
// the lists serviceProperties/targetProperties) a service stays only while
// its previous target still has room: the services that want to stay are
// taken smallest first (by their requirement, as a share of the total
// capacity), which keeps the largest number of services in place, and each
// one consumes its requirement on every target it keeps.
type PreferPrevious struct {
	// Dims are optional capacity dimensions.
	Dims []Capacity
}

var _ Filter = (*PreferPrevious)(nil)

var preferPreviousSpec = Spec{
	Name:   "preferPrevious",
	Params: []string{"serviceProperty", "targetProperty", "serviceProperties", "targetProperties"},
	New:    newPreferPrevious,
	Pure:   true,
	Doc:    "keep every service on its previous target while that is still a candidate (and has capacity): move as few services as possible",
}

func newPreferPrevious(p Params) (Filter, error) {
	dims, err := algCapacityParams("preferPrevious", p, false)
	if err != nil {
		return nil, err
	}
	return &PreferPrevious{Dims: dims}, nil
}

// Apply implements Filter.
func (f *PreferPrevious) Apply(env *Env, in *Candidates) (*Candidates, error) {
	if env.Previous == nil {
		if env.Explaining {
			for _, s := range in.Services {
				env.Note(s, "no previous distribution, nothing to keep")
			}
		}
		return in, nil
	}
	strs := in.Strings
	out := in.Derive()
	copy(out.Lists, in.Lists)

	type stay struct {
		si   int
		keep []Cand
		req  []int64
		size float64
	}
	var stays []stay
	for si, s := range in.Services {
		prev := env.Previous[s]
		if len(prev) == 0 {
			if env.Explaining {
				env.Note(s, "new service, no previous target")
			}
			continue
		}
		var keep []Cand
		var gone []string
		for _, m := range prev {
			// The candidate that equals the previous mapping (container
			// included), else the first one naming the same target.
			match := -1
			if t, ok := strs.Lookup(m.Target); ok && !algHasTarget(keep, t) {
				for ci, c := range in.Lists[si] {
					if c.Target != t {
						continue
					}
					if match < 0 {
						match = ci
					}
					if in.Mapping(c) == m {
						match = ci
						break
					}
				}
			} else if ok {
				continue // a second previous mapping on a target already kept
			}
			if match < 0 {
				gone = append(gone, m.Target)
				continue
			}
			keep = append(keep, in.Lists[si][match])
		}
		if len(keep) == 0 {
			if env.Explaining {
				env.Note(s, fmt.Sprintf("moved: previous target(s) %s no longer a candidate", strings.Join(gone, ", ")))
			}
			continue
		}
		if len(gone) > 0 && env.Explaining {
			env.Note(s, fmt.Sprintf("partly moved: previous target(s) %s no longer a candidate", strings.Join(gone, ", ")))
		}
		st := stay{si: si, keep: keep}
		if len(f.Dims) > 0 {
			st.req = make([]int64, len(f.Dims))
			for i, d := range f.Dims {
				v, err := algServiceNumber(env.Services, s, d.ServiceProperty)
				if err != nil {
					return nil, fmt.Errorf("preferPrevious: %w", err)
				}
				st.req[i] = v
			}
		}
		stays = append(stays, st)
	}

	var caps *capTable
	if len(f.Dims) > 0 {
		caps = newCapTable(env.Infrastructure, strs, f.Dims)
		w := caps.weights()
		for i := range stays {
			for k, r := range stays[i].req {
				stays[i].size += float64(r) / w[k]
			}
		}
		sort.SliceStable(stays, func(a, b int) bool { return stays[a].size < stays[b].size })
	}
	for _, st := range stays {
		s := in.Services[st.si]
		keep := st.keep
		if caps != nil {
			var fitting []Cand
			for _, c := range keep {
				cp, ok := caps.get(c.Target)
				switch {
				case !ok:
					if env.Explaining {
						env.Note(s, fmt.Sprintf("moved off %s: it has no numeric property %s", strs.Name(c.Target), caps.missing(c.Target)))
					}
				case !algFits(st.req, cp):
					if env.Explaining {
						env.Note(s, fmt.Sprintf("moved off %s: needs %s but only %s left there", strs.Name(c.Target), algFormatDims(f.Dims, st.req, false), algFormatDims(f.Dims, cp, true)))
					}
				default:
					for i := range cp {
						cp[i] -= st.req[i]
					}
					fitting = append(fitting, c)
				}
			}
			keep = fitting
			if len(keep) == 0 {
				continue
			}
		}
		out.Lists[st.si] = keep
		if env.Explaining {
			names := make([]string, len(keep))
			for i, c := range keep {
				names[i] = strs.Name(c.Target)
			}
			env.Note(s, fmt.Sprintf("kept on previous target(s) %s", strings.Join(names, ", ")))
			for _, c := range in.Lists[st.si] {
				if !algHasTarget(keep, c.Target) {
					env.Reject(s, strs.Name(c.Target), fmt.Sprintf("not a previous target; preferring %s", strings.Join(names, ", ")))
				}
			}
		}
	}
	return out, nil
}

func algHasTarget(list []Cand, t int32) bool {
	for _, c := range list {
		if c.Target == t {
			return true
		}
	}
	return false
}
