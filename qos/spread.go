package qos

import (
	"fmt"
	"sort"

	"github.com/dydisnix/dydisnix/model"
)

// Spread spreads the services of a group over failure domains: the values
// of a target property such as zone or rack. Each service of a group keeps
// only its candidates in the domain that hosts the fewest services of its
// group so far (the first such domain in its candidate order), so a later
// step (divide, divideRoundRobin) picks the machine inside that domain.
//
// Services are grouped by the value of a service attribute (default
// "group"); services without it are left unchanged. Within a group the most
// constrained services (fewest distinct candidate domains) are placed first,
// then by name, which balances the group whenever the candidates allow: when
// every member may use every domain, the domain counts differ by at most one.
type Spread struct {
	// TargetProperty is the failure-domain property of a target (zone, rack).
	TargetProperty string
	// ServiceProperty is the service attribute naming the group ("" means
	// "group").
	ServiceProperty string
	// Group, when not empty, restricts the filter to that one group.
	Group string
}

var _ Filter = (*Spread)(nil)

var spreadSpec = Spec{
	Name:   "spread",
	Params: []string{"targetProperty", "serviceProperty", "group"},
	New:    newSpread,
	Pure:   true,
	Doc:    "spread each service group over a target property (zone, rack) for failure domains",
}

func newSpread(p Params) (Filter, error) {
	tp, ok, err := p.Str("targetProperty")
	if err != nil {
		return nil, fmt.Errorf("spread: %w", err)
	}
	if !ok || tp == "" {
		return nil, fmt.Errorf("spread: parameter targetProperty (the failure-domain property, e.g. zone) is required")
	}
	sp, ok, err := p.Str("serviceProperty")
	if err != nil {
		return nil, fmt.Errorf("spread: %w", err)
	}
	if !ok || sp == "" {
		sp = "group"
	}
	g, _, err := p.Str("group")
	if err != nil {
		return nil, fmt.Errorf("spread: %w", err)
	}
	return &Spread{TargetProperty: tp, ServiceProperty: sp, Group: g}, nil
}

// domainOf returns the failure domain of a target: its property's text, or
// the target itself (a domain of one machine) when it lacks the property.
func (f *Spread) domainOf(env *Env, target string) string {
	if t := env.Infrastructure[target]; t != nil {
		if v, ok := t.Property(f.TargetProperty); ok {
			if s, ok := model.ScalarText(v); ok {
				return f.TargetProperty + "=" + s
			}
		}
	}
	return "target " + target
}

// Apply implements Filter.
func (f *Spread) Apply(env *Env, in *Candidates) (*Candidates, error) {
	strs := in.Strings
	attr := f.ServiceProperty
	if attr == "" {
		attr = "group"
	}
	groups := map[string][]int{}
	var groupNames []string
	for si, s := range in.Services {
		svc := env.Services[s]
		if svc == nil {
			continue
		}
		v, ok := svc.Attr(attr)
		if !ok || v == nil {
			continue
		}
		g, ok := model.ScalarText(v)
		if !ok {
			return nil, fmt.Errorf("spread: service %s: attribute %s: expected a string, got %s", s, attr, model.TypeName(v))
		}
		if g == "" || (f.Group != "" && g != f.Group) {
			continue
		}
		if _, seen := groups[g]; !seen {
			groupNames = append(groupNames, g)
		}
		groups[g] = append(groups[g], si)
	}
	if len(groups) == 0 {
		return in, nil
	}
	// Domain id per Strings index (-1 unknown yet), computed once.
	domID := make([]int32, strs.Len())
	for i := range domID {
		domID[i] = -1
	}
	var domNames []string
	byName := map[string]int32{}
	dom := func(t int32) int32 {
		if d := domID[t]; d >= 0 {
			return d
		}
		name := f.domainOf(env, strs.Name(t))
		d, ok := byName[name]
		if !ok {
			d = int32(len(domNames))
			byName[name] = d
			domNames = append(domNames, name)
		}
		domID[t] = d
		return d
	}
	out := in.Derive()
	copy(out.Lists, in.Lists)
	sort.Strings(groupNames)
	var count []int
	var stamp []int
	stampN := 0
	for _, g := range groupNames {
		members := groups[g]
		distinct := make(map[int]int, len(members))
		for _, si := range members {
			stampN++
			n := 0
			for _, c := range in.Lists[si] {
				d := int(dom(c.Target))
				for len(stamp) <= d {
					stamp = append(stamp, 0)
				}
				if stamp[d] != stampN {
					stamp[d] = stampN
					n++
				}
			}
			distinct[si] = n
		}
		sort.SliceStable(members, func(a, b int) bool { return distinct[members[a]] < distinct[members[b]] })
		count = append(count[:0], make([]int, len(domNames))...)
		for _, si := range members {
			list := in.Lists[si]
			if len(list) == 0 {
				continue
			}
			best, bestN, nKept := int32(-1), -1, 0
			for _, c := range list {
				d := domID[c.Target]
				if n := count[d]; bestN < 0 || n < bestN {
					best, bestN, nKept = d, n, 0
				}
				if d == best {
					nKept++
				}
			}
			count[best]++
			kept := make([]Cand, 0, nKept)
			for _, c := range list {
				if domID[c.Target] == best {
					kept = append(kept, c)
				}
			}
			out.Lists[si] = kept
			if env.Explaining {
				s := in.Services[si]
				env.Note(s, fmt.Sprintf("group %s → %s (member %d there)", g, domNames[best], bestN+1))
				for _, c := range list {
					d := dom(c.Target)
					switch {
					case d == best:
					case count[d] == bestN:
						env.Reject(s, strs.Name(c.Target), fmt.Sprintf("%s hosts as many services of group %s (%d) as %s, which comes first among the candidates", domNames[d], g, bestN, domNames[best]))
					default:
						env.Reject(s, strs.Name(c.Target), fmt.Sprintf("%s hosts %d service(s) of group %s, %s only %d", domNames[d], count[d], g, domNames[best], bestN))
					}
				}
			}
		}
	}
	return out, nil
}
