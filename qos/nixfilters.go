package qos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// The filters of the original's Nix filter library (nix/intfilters.nix),
// with its exact semantics: output keys are the input distribution's keys,
// candidate order is kept, equality is Nix's ==, and a property is only
// looked at where the lazy Nix code would force it (so a service with an
// empty candidate list may lack the property). Candidates that are
// {target, container} records are looked up by their target (the Nix code
// would fail on them); they only ever equal identical records.

func init() {
	Register(Spec{Name: "createCartesianProduct", New: noParams(cartesianFilter{}),
		Doc: "every service of the services model × every target (sorted); ignores the input distribution"})
	Register(Spec{Name: "mapAttrOnList", Params: []string{"serviceProperty", "targetPropertyList"}, New: newMapAttrOnList,
		Doc: "keep targets whose list property targetPropertyList contains the service's serviceProperty"})
	Register(Spec{Name: "mapListOnAttr", Params: []string{"servicePropertyList", "targetProperty"}, New: newMapListOnAttr,
		Doc: "keep targets whose property targetProperty is in the service's list servicePropertyList"})
	Register(Spec{Name: "mapAttrOnAttr", Params: []string{"serviceProperty", "targetProperty"}, New: newMapAttrOnAttr,
		Doc: "keep targets whose property targetProperty equals the service's serviceProperty"})
	Register(Spec{Name: "mapStatefulToPrevious", New: noParams(statefulToPrevious{}),
		Doc: "keep a stateful service on the candidates it was deployed to before"})
	Register(Spec{Name: "mapBoundServicesToPrevious", New: noParams(boundToPrevious{}),
		Doc: "map every previously deployed service to its previous targets, verbatim"})
	Register(Spec{Name: "divideRoundRobin", New: noParams(roundRobin{}),
		Doc: "pick one target per service, rotating through each service's candidates"})
	Register(Spec{Name: "order", Params: []string{"targetProperty"}, New: newOrder,
		Doc: "sort each candidate list ascending by the targets' targetProperty (stable)"})
}

func noParams(f Filter) Factory {
	return func(p Params) (Filter, error) {
		for k := range p {
			return nil, fmt.Errorf("unknown parameter %q: the filter takes none", k)
		}
		return f, nil
	}
}

// ---- lookups with the Nix filters' error messages ----

func nixService(env *Env, name string) (*model.Service, error) {
	s := env.Services[name]
	if s == nil {
		return nil, fmt.Errorf("service %s is not in the services model (attribute '%s' missing)", name, name)
	}
	return s, nil
}

func nixTarget(env *Env, c *Candidates, svc string, x Cand) (*model.Target, error) {
	t := env.TargetOf(c.Strings, x)
	if t == nil {
		name := c.Strings.Name(x.Target)
		return nil, fmt.Errorf("candidate target %s of service %s is not in the infrastructure (attribute '%s' missing)", name, svc, name)
	}
	return t, nil
}

func nixTargetProp(t *model.Target, prop, role string) (any, error) {
	v, ok := t.Properties[prop]
	if !ok {
		return nil, fmt.Errorf("target %s has no property %s (%s; attribute '%s' missing)", t.Name, prop, role, prop)
	}
	return v, nil
}

func nixServiceAttr(s *model.Service, prop, role string) (any, error) {
	v, ok := s.Attr(prop)
	if !ok {
		return nil, fmt.Errorf("service %s has no attribute %s (%s; attribute '%s' missing)", s.Name, prop, role, prop)
	}
	return v, nil
}

// targetInfo caches, per Strings index, what a filter computed about a target.
type targetInfo struct {
	done bool
	id   int32   // value key id of a scalar property
	ids  []int32 // value key ids of a list property
	v    any
	err  error
}

type targetCache struct {
	infos []targetInfo
}

func (tc *targetCache) get(c *Candidates, x Cand) *targetInfo {
	if int(x.Target) >= len(tc.infos) {
		n := c.Strings.Len()
		tc.infos = append(tc.infos, make([]targetInfo, n-len(tc.infos))...)
	}
	return &tc.infos[x.Target]
}

type listKey struct {
	p  *Cand
	n  int
	id int32
}

// ---- createCartesianProduct ----

type cartesianFilter struct{}

func (cartesianFilter) Apply(env *Env, in *Candidates) (*Candidates, error) {
	names := env.TargetNames()
	all := make([]Cand, len(names))
	for i, t := range names {
		all[i] = Cand{Target: in.Strings.Intern(t), Container: NoContainer}
	}
	out := NewCandidates(in.Strings, env.Services.Names())
	for i := range out.Lists {
		out.Lists[i] = all[:len(all):len(all)]
	}
	return out, nil
}

// ---- mapAttrOnList ----

type mapAttrOnList struct{ sp, tp string }

func newMapAttrOnList(p Params) (Filter, error) {
	sp, err := p.RequireStr("serviceProperty")
	if err != nil {
		return nil, err
	}
	tp, err := p.RequireStr("targetPropertyList")
	if err != nil {
		return nil, err
	}
	return mapAttrOnList{sp, tp}, nil
}

func (f mapAttrOnList) Apply(env *Env, in *Candidates) (*Candidates, error) {
	out := in.Derive()
	keys := keyTable{}
	var tc targetCache
	cache := map[listKey][]Cand{}
	reasons := map[[2]int32]string{}
	for i, svc := range in.Services {
		list := in.Lists[i]
		if len(list) == 0 {
			out.Lists[i] = list
			continue
		}
		// The service and its property are only forced by elem over a
		// non-empty target list.
		var v any
		s, verr := nixService(env, svc)
		if verr == nil {
			v, verr = nixServiceAttr(s, f.sp, "serviceProperty of mapAttrOnList")
		}
		vid := int32(-1)
		if verr == nil {
			vid = keys.id(v)
			if !env.Explains(svc) {
				if r, ok := cache[listKey{&list[0], len(list), vid}]; ok {
					out.Lists[i] = r
					continue
				}
			}
		}
		kept := make([]Cand, 0, len(list))
		for _, x := range list {
			ti := tc.get(in, x)
			if !ti.done {
				ti.done = true
				t, err := nixTarget(env, in, svc, x)
				if err == nil {
					ti.v, err = nixTargetProp(t, f.tp, "targetPropertyList of mapAttrOnList")
				}
				if err == nil {
					l, ok := ti.v.([]any)
					if !ok {
						err = fmt.Errorf("property %s of target %s is %s, expected a list (targetPropertyList of mapAttrOnList)", f.tp, t.Name, nixKind(ti.v))
					}
					for _, e := range l {
						ti.ids = append(ti.ids, keys.id(e))
					}
				}
				ti.err = err
			}
			if ti.err != nil {
				return nil, ti.err
			}
			if len(ti.ids) > 0 && verr != nil {
				return nil, verr // forced by elem only when the list is not empty
			}
			found := false
			for _, id := range ti.ids {
				if id == vid {
					found = true
					break
				}
			}
			if found {
				kept = append(kept, x)
			} else if env.Explains(svc) {
				rk := [2]int32{vid, x.Target}
				reason, ok := reasons[rk]
				if !ok {
					shown := "<missing>"
					if verr == nil {
						shown = show(v)
					}
					reason = fmt.Sprintf("%s %s not in %s %s", f.sp, shown, f.tp, show(ti.v))
					reasons[rk] = reason
				}
				env.Reject(svc, candName(in, x), reason)
			}
		}
		kept = kept[:len(kept):len(kept)]
		if verr == nil && !env.Explains(svc) {
			cache[listKey{&list[0], len(list), vid}] = kept
		}
		out.Lists[i] = kept
	}
	return out, nil
}

// ---- mapListOnAttr ----

type mapListOnAttr struct{ sp, tp string }

func newMapListOnAttr(p Params) (Filter, error) {
	sp, err := p.RequireStr("servicePropertyList")
	if err != nil {
		return nil, err
	}
	tp, err := p.RequireStr("targetProperty")
	if err != nil {
		return nil, err
	}
	return mapListOnAttr{sp, tp}, nil
}

func (f mapListOnAttr) Apply(env *Env, in *Candidates) (*Candidates, error) {
	out := in.Derive()
	keys := keyTable{}
	var tc targetCache
	for i, svc := range in.Services {
		list := in.Lists[i]
		if len(list) == 0 {
			out.Lists[i] = list
			continue
		}
		s, err := nixService(env, svc)
		if err != nil {
			return nil, err
		}
		v, err := nixServiceAttr(s, f.sp, "servicePropertyList of mapListOnAttr")
		if err != nil {
			return nil, err
		}
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("attribute %s of service %s is %s, expected a list (servicePropertyList of mapListOnAttr)", f.sp, svc, nixKind(v))
		}
		if len(l) == 0 {
			// elem over an empty list never looks at the target
			out.Lists[i] = []Cand{}
			if env.Explains(svc) {
				for _, x := range list {
					env.Reject(svc, candName(in, x), fmt.Sprintf("%s is empty", f.sp))
				}
			}
			continue
		}
		ids := make([]int32, len(l))
		for k, e := range l {
			ids[k] = keys.id(e)
		}
		kept := make([]Cand, 0, len(list))
		for _, x := range list {
			ti := tc.get(in, x)
			if !ti.done {
				ti.done = true
				t, err := nixTarget(env, in, svc, x)
				if err == nil {
					ti.v, err = nixTargetProp(t, f.tp, "targetProperty of mapListOnAttr")
				}
				if err == nil {
					ti.id = keys.id(ti.v)
				}
				ti.err = err
			}
			if ti.err != nil {
				return nil, ti.err
			}
			found := false
			for _, id := range ids {
				if id == ti.id {
					found = true
					break
				}
			}
			if found {
				kept = append(kept, x)
			} else if env.Explains(svc) {
				env.Reject(svc, candName(in, x), fmt.Sprintf("%s %s not in %s %s", f.tp, show(ti.v), f.sp, show(v)))
			}
		}
		out.Lists[i] = kept[:len(kept):len(kept)]
	}
	return out, nil
}

// ---- mapAttrOnAttr ----

type mapAttrOnAttr struct{ sp, tp string }

func newMapAttrOnAttr(p Params) (Filter, error) {
	sp, err := p.RequireStr("serviceProperty")
	if err != nil {
		return nil, err
	}
	tp, err := p.RequireStr("targetProperty")
	if err != nil {
		return nil, err
	}
	return mapAttrOnAttr{sp, tp}, nil
}

func (f mapAttrOnAttr) Apply(env *Env, in *Candidates) (*Candidates, error) {
	out := in.Derive()
	keys := keyTable{}
	var tc targetCache
	cache := map[listKey][]Cand{}
	for i, svc := range in.Services {
		list := in.Lists[i]
		if len(list) == 0 {
			out.Lists[i] = list
			continue
		}
		s, err := nixService(env, svc)
		if err != nil {
			return nil, err
		}
		v, err := nixServiceAttr(s, f.sp, "serviceProperty of mapAttrOnAttr")
		if err != nil {
			return nil, err
		}
		vid := keys.id(v)
		ck := listKey{&list[0], len(list), vid}
		if !env.Explains(svc) {
			if r, ok := cache[ck]; ok {
				out.Lists[i] = r
				continue
			}
		}
		kept := make([]Cand, 0, len(list))
		for _, x := range list {
			ti := tc.get(in, x)
			if !ti.done {
				ti.done = true
				t, err := nixTarget(env, in, svc, x)
				if err == nil {
					ti.v, err = nixTargetProp(t, f.tp, "targetProperty of mapAttrOnAttr")
				}
				if err == nil {
					ti.id = keys.id(ti.v)
				}
				ti.err = err
			}
			if ti.err != nil {
				return nil, ti.err
			}
			if ti.id == vid {
				kept = append(kept, x)
			} else if env.Explains(svc) {
				env.Reject(svc, candName(in, x), fmt.Sprintf("%s %s != %s %s", f.sp, show(v), f.tp, show(ti.v)))
			}
		}
		kept = kept[:len(kept):len(kept)]
		if !env.Explains(svc) {
			cache[ck] = kept
		}
		out.Lists[i] = kept
	}
	return out, nil
}

// ---- mapStatefulToPrevious ----

type statefulToPrevious struct{}

func (statefulToPrevious) Apply(env *Env, in *Candidates) (*Candidates, error) {
	if env.Previous == nil {
		return in, nil
	}
	out := in.Derive()
	for i, svc := range in.Services {
		list := in.Lists[i]
		out.Lists[i] = list
		s, err := nixService(env, svc)
		if err != nil {
			return nil, err
		}
		sv, has := s.Attrs["stateful"]
		if !has {
			continue
		}
		stateful, ok := sv.(bool)
		if !ok {
			return nil, fmt.Errorf("attribute stateful of service %s is %s, expected a Boolean (value is %s while a Boolean was expected)", svc, nixKind(sv), nixKind(sv))
		}
		if !stateful {
			continue
		}
		prev, has := env.Previous[svc]
		if !has {
			continue // the previous list defaults to the candidates
		}
		pc := make([]Cand, len(prev))
		for k, m := range prev {
			pc[k] = in.Cand(m)
		}
		kept := make([]Cand, 0, len(list))
		for _, x := range list {
			found := false
			for _, y := range pc {
				if x == y {
					found = true
					break
				}
			}
			if found {
				kept = append(kept, x)
			} else if env.Explains(svc) {
				env.Reject(svc, candName(in, x), fmt.Sprintf("stateful service: not one of its previous targets [%s]", strings.Join(candNames(in, pc), ", ")))
			}
		}
		out.Lists[i] = kept
	}
	return out, nil
}

// ---- mapBoundServicesToPrevious ----

type boundToPrevious struct{}

func (boundToPrevious) Apply(env *Env, in *Candidates) (*Candidates, error) {
	if env.Previous == nil {
		return in, nil
	}
	out := in.Derive()
	for i, svc := range in.Services {
		prev, has := env.Previous[svc]
		if !has {
			out.Lists[i] = in.Lists[i]
			continue
		}
		pc := make([]Cand, len(prev))
		for k, m := range prev {
			pc[k] = in.Cand(m)
		}
		out.Lists[i] = pc
		if env.Explains(svc) {
			for _, x := range in.Lists[i] {
				found := false
				for _, y := range pc {
					if x == y {
						found = true
						break
					}
				}
				if !found {
					env.Reject(svc, candName(in, x), fmt.Sprintf("bound to its previous targets [%s]", strings.Join(candNames(in, pc), ", ")))
				}
			}
		}
	}
	return out, nil
}

// ---- divideRoundRobin ----

type roundRobin struct{}

func (roundRobin) Apply(env *Env, in *Candidates) (*Candidates, error) {
	out := in.Derive()
	buf := make([]Cand, len(in.Services))
	var prev Cand
	var prevSvc string
	first := true
	for i, svc := range in.Services {
		list := in.Lists[i]
		var chosen Cand
		why := ""
		switch {
		case first && len(list) == 0:
			return nil, fmt.Errorf("service %s has no candidate target to choose from (head of empty list)", svc)
		case first:
			chosen, why = list[0], "first service: its first candidate"
		case len(list) == 0:
			return nil, fmt.Errorf("Cannot find a target machine! (service %s has no candidate target)", svc)
		case len(list) == 1:
			chosen, why = list[0], "its only candidate"
		default:
			chosen, why = list[0], fmt.Sprintf("first candidate (%s, the target of %s, is not a candidate)", candName(in, prev), prevSvc)
			for k, x := range list {
				if x == prev {
					if k+1 < len(list) {
						chosen = list[k+1]
						why = fmt.Sprintf("the candidate after %s, the target of %s", candName(in, prev), prevSvc)
					} else {
						chosen = list[0]
						why = fmt.Sprintf("wrapped around after %s, the target of %s", candName(in, prev), prevSvc)
					}
					break
				}
			}
		}
		buf[i] = chosen
		out.Lists[i] = buf[i : i+1 : i+1]
		if env.Explains(svc) {
			reason := fmt.Sprintf("round robin chose %s (%s)", candName(in, chosen), why)
			for _, x := range list {
				if x != chosen {
					env.Reject(svc, candName(in, x), reason)
				}
			}
		}
		prev, prevSvc, first = chosen, svc, false
	}
	return out, nil
}

// ---- order ----

type orderFilter struct{ tp string }

func newOrder(p Params) (Filter, error) {
	tp, err := p.RequireStr("targetProperty")
	if err != nil {
		return nil, err
	}
	return orderFilter{tp}, nil
}

func (f orderFilter) Apply(env *Env, in *Candidates) (*Candidates, error) {
	out := in.Derive()
	var tc targetCache
	type cacheKey struct {
		p *Cand
		n int
	}
	cache := map[cacheKey][]Cand{}
	for i, svc := range in.Services {
		list := in.Lists[i]
		if len(list) < 2 {
			out.Lists[i] = list
			continue
		}
		ck := cacheKey{&list[0], len(list)}
		if r, ok := cache[ck]; ok {
			out.Lists[i] = r
			continue
		}
		vals := make([]any, len(list))
		for k, x := range list {
			ti := tc.get(in, x)
			if !ti.done {
				ti.done = true
				t, err := nixTarget(env, in, svc, x)
				if err == nil {
					ti.v, err = nixTargetProp(t, f.tp, "targetProperty of order")
				}
				ti.err = err
			}
			if ti.err != nil {
				return nil, ti.err
			}
			vals[k] = ti.v
		}
		idx := make([]int, len(list))
		for k := range idx {
			idx[k] = k
		}
		var cmpErr error
		sort.SliceStable(idx, func(a, b int) bool {
			lt, err := nixLess(vals[idx[a]], vals[idx[b]])
			if err != nil && cmpErr == nil {
				cmpErr = fmt.Errorf("order: targets %s and %s of service %s: property %s: %v", candName(in, list[idx[a]]), candName(in, list[idx[b]]), svc, f.tp, err)
			}
			return lt
		})
		if cmpErr != nil {
			return nil, cmpErr
		}
		sorted := make([]Cand, len(list))
		for k, j := range idx {
			sorted[k] = list[j]
		}
		if env.Explains(svc) {
			moved := false
			for k := range sorted {
				if sorted[k] != list[k] {
					moved = true
					break
				}
			}
			if moved {
				parts := make([]string, len(sorted))
				for k, x := range sorted {
					parts[k] = fmt.Sprintf("%s (%s)", candName(in, x), show(vals[idx[k]]))
				}
				env.Note(svc, fmt.Sprintf("ordered by %s: %s", f.tp, strings.Join(parts, ", ")))
			}
		}
		cache[ck] = sorted
		out.Lists[i] = sorted
	}
	return out, nil
}
