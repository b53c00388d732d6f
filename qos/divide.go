package qos

import (
	"fmt"
)

// Divide strategies of the reference dydisnix-divide.
const (
	StrategyGreedy        = "greedy"
	StrategyHighestBidder = "highest-bidder"
	StrategyLowestBidder  = "lowest-bidder"
)

// Divide is the reference divide filter (dydisnix-divide): services, in
// sorted order, each take one candidate target with enough remaining
// capacity, and the capacity is decremented. With several capacity
// dimensions a target fits when it fits in every dimension.
type Divide struct {
	// Strategy is greedy, highest-bidder or lowest-bidder.
	Strategy string
	// Dims are the capacity dimensions (at least one); the reference has
	// exactly one.
	Dims []Capacity
	// PinnedFirst places the services with exactly one candidate before the
	// others (each group in sorted order), so services a previous step
	// pinned (preferPrevious) get their capacity before the rest compete
	// for it. Off by default: the reference visits all in sorted order.
	PinnedFirst bool
}

var _ Filter = (*Divide)(nil)

var divideSpec = Spec{
	Name:   "divide",
	Params: []string{"strategy", "serviceProperty", "targetProperty", "serviceProperties", "targetProperties", "pinnedFirst"},
	New:    newDivide,
	Pure:   true,
	Doc:    "give every service one candidate with enough capacity left (greedy, highest-bidder, lowest-bidder; several capacities at once)",
}

func newDivide(p Params) (Filter, error) {
	strategy, ok, err := p.Str("strategy")
	if err != nil {
		return nil, fmt.Errorf("divide: %w", err)
	}
	if !ok || strategy == "" {
		return nil, fmt.Errorf("ERROR: A strategy must be provided! (divide: parameter strategy: greedy, highest-bidder or lowest-bidder)")
	}
	switch strategy {
	case StrategyGreedy, StrategyHighestBidder, StrategyLowestBidder:
	default:
		return nil, fmt.Errorf("Unknown strategy: %s (divide: parameter strategy: greedy, highest-bidder or lowest-bidder)", strategy)
	}
	dims, err := algCapacityParams("divide", p, true)
	if err != nil {
		return nil, err
	}
	pinned, err := p.Bool("pinnedFirst")
	if err != nil {
		return nil, fmt.Errorf("divide: %w", err)
	}
	return &Divide{Strategy: strategy, Dims: dims, PinnedFirst: pinned}, nil
}

// NewDivide returns a divide filter over one or more capacity dimensions,
// given as pairs of service and target property names.
func NewDivide(strategy string, serviceProperties, targetProperties []string) (*Divide, error) {
	p := Params{"strategy": strategy, "serviceProperties": algAny(serviceProperties), "targetProperties": algAny(targetProperties)}
	f, err := newDivide(p)
	if err != nil {
		return nil, err
	}
	return f.(*Divide), nil
}

func algAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Apply implements Filter.
func (d *Divide) Apply(env *Env, in *Candidates) (*Candidates, error) {
	for _, dim := range d.Dims {
		if err := checkTargetNumbers(env.Infrastructure, dim.TargetProperty); err != nil {
			return nil, err
		}
	}
	out := in.Derive()
	picked := make([]Cand, len(in.Services))
	caps := newCapTable(env.Infrastructure, in.Strings, d.Dims)
	k := len(d.Dims)
	req := make([]int64, k)
	var w []float64
	if k > 1 && d.Strategy != StrategyGreedy {
		w = caps.weights()
	}
	order := make([]int, 0, len(in.Services))
	if d.PinnedFirst {
		for si := range in.Services {
			if len(in.Lists[si]) == 1 {
				order = append(order, si)
			}
		}
		for si := range in.Services {
			if len(in.Lists[si]) != 1 {
				order = append(order, si)
			}
		}
	} else {
		for si := range in.Services {
			order = append(order, si)
		}
	}
	for _, si := range order {
		s := in.Services[si]
		for i, dim := range d.Dims {
			v, err := algServiceNumber(env.Services, s, dim.ServiceProperty)
			if err != nil {
				return nil, err
			}
			req[i] = v
		}
		list := in.Lists[si]
		best := -1
		var bestCap []int64
		var bestScore float64
		for ci, c := range list {
			cp, ok := caps.get(c.Target)
			if !ok || !algFits(req, cp) {
				continue
			}
			if best < 0 {
				best, bestCap = ci, cp
				if w != nil {
					bestScore = algBottleneck(cp, w)
				}
				if d.Strategy == StrategyGreedy {
					break
				}
				continue
			}
			better := false
			if w == nil {
				switch d.Strategy {
				case StrategyHighestBidder:
					better = cp[0] > bestCap[0]
				case StrategyLowestBidder:
					better = cp[0] < bestCap[0]
				}
			} else {
				sc := algBottleneck(cp, w)
				switch d.Strategy {
				case StrategyHighestBidder:
					better = sc > bestScore
				case StrategyLowestBidder:
					better = sc < bestScore
				}
				if better {
					bestScore = sc
				}
			}
			if better {
				best, bestCap = ci, cp
			}
		}
		if env.Explaining {
			d.explain(env, in, s, list, best, req, caps)
		}
		if best < 0 {
			return nil, fmt.Errorf("Unable to select a target machine for service: %s, because none of them has sufficient resources left!", s)
		}
		for i := range bestCap {
			bestCap[i] -= req[i]
		}
		picked[si] = list[best]
		out.Lists[si] = picked[si : si+1 : si+1]
	}
	return out, nil
}

// bottleneck is the smallest remaining capacity share over the dimensions:
// highest-bidder maximises it (worst fit on the dominant resource),
// lowest-bidder minimises it (best fit).
func algBottleneck(cp []int64, w []float64) float64 {
	m := float64(cp[0]) / w[0]
	for i := 1; i < len(cp); i++ {
		if v := float64(cp[i]) / w[i]; v < m {
			m = v
		}
	}
	return m
}

func (d *Divide) explain(env *Env, in *Candidates, s string, list []Cand, best int, req []int64, caps *capTable) {
	strs := in.Strings
	for ci, c := range list {
		if ci == best {
			continue
		}
		t := strs.Name(c.Target)
		cp, ok := caps.get(c.Target)
		switch {
		case !ok:
			env.Reject(s, t, fmt.Sprintf("target has no numeric property %s", caps.missing(c.Target)))
		case !algFits(req, cp):
			env.Reject(s, t, fmt.Sprintf("needs %s but only %s left", algFormatDims(d.Dims, req, false), algFormatDims(d.Dims, cp, true)))
		default:
			bt := strs.Name(list[best].Target)
			switch d.Strategy {
			case StrategyGreedy:
				if ci < best {
					env.Reject(s, t, "greedy: not chosen")
				} else {
					env.Reject(s, t, fmt.Sprintf("greedy: earlier candidate %s fits first", bt))
				}
			case StrategyHighestBidder:
				env.Reject(s, t, fmt.Sprintf("highest-bidder: %s has more capacity left, or as much and comes earlier (%s here)", bt, algFormatDims(d.Dims, cp, true)))
			default:
				env.Reject(s, t, fmt.Sprintf("lowest-bidder: %s has less capacity left, or as much and comes earlier (%s here)", bt, algFormatDims(d.Dims, cp, true)))
			}
		}
	}
	if best >= 0 {
		cp, _ := caps.get(list[best].Target)
		env.Note(s, fmt.Sprintf("%s: placed on %s (needs %s, had %s left)", d.Strategy, strs.Name(list[best].Target), algFormatDims(d.Dims, req, false), algFormatDims(d.Dims, cp, true)))
	}
}
