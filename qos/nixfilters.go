package qos

import (
	"fmt"
	"slices"
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

// The specs of the filters of this file (see DefaultRegistry).
var (
	cartesianSpec = Spec{Name: "createCartesianProduct", New: noParams(cartesianFilter{}), Pure: true,
		Doc: "every service of the services model × every target (sorted); ignores the input distribution"}
	mapAttrOnListSpec = mapSpec(mapFilter{name: "mapAttrOnList", targetList: true},
		"keep targets whose list property targetPropertyList contains the service's serviceProperty")
	mapListOnAttrSpec = mapSpec(mapFilter{name: "mapListOnAttr", serviceList: true},
		"keep targets whose property targetProperty is in the service's list servicePropertyList")
	mapAttrOnAttrSpec = mapSpec(mapFilter{name: "mapAttrOnAttr"},
		"keep targets whose property targetProperty equals the service's serviceProperty")
	statefulSpec = Spec{Name: "mapStatefulToPrevious", New: noParams(statefulToPrevious{}), Pure: true,
		Doc: "keep a stateful service on the candidates it was deployed to before"}
	boundSpec = Spec{Name: "mapBoundServicesToPrevious", New: noParams(boundToPrevious{}), Pure: true,
		Doc: "map every previously deployed service to its previous targets, verbatim"}
	roundRobinSpec = Spec{Name: "divideRoundRobin", New: noParams(roundRobin{}), Pure: true,
		Doc: "pick one target per service, rotating through each service's candidates"}
	orderSpec = Spec{Name: "order", Params: []string{"targetProperty"}, New: newOrder, Pure: true,
		Doc: "sort each candidate list ascending by the targets' targetProperty (stable)"}
)

// noParams is the factory of a filter without parameters (Spec.Build
// refuses any).
func noParams(f Filter) Factory {
	return func(Params) (Filter, error) { return f, nil }
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

// attrMissing is the error for a service without the attribute a filter
// needs; role names the filter's parameter.
func attrMissing(s *model.Service, prop, role string) error {
	return fmt.Errorf("service %s has no attribute %s (%s; attribute '%s' missing)", s.Name, prop, role, prop)
}

// ---- createCartesianProduct ----

type cartesianFilter struct{}

func (cartesianFilter) Apply(env *Env, in *Candidates) (*Candidates, error) {
	names := env.TargetNames()
	all := make([]Cand, len(names))
	for i, t := range names {
		all[i] = Cand{Target: in.Strings.Intern(t), Container: NoContainer}
	}
	out := candidatesOf(in.Strings, env.Services.Names())
	for i := range out.Lists {
		out.Lists[i] = all[:len(all):len(all)]
	}
	return out, nil
}

// ---- mapAttrOnList, mapListOnAttr, mapAttrOnAttr ----

// mapFilter is the predicate of the three map filters: a service property
// compared with a target property, one side possibly a list whose elements
// are compared with the other side (elem). As in the Nix code, the list
// side is forced first and the element side only when the list is not
// empty: mapAttrOnList looks at the service's attribute only for a target
// whose list is not empty, and mapListOnAttr never looks at the targets of
// a service whose list is empty.
type mapFilter struct {
	name                    string
	sp, tp                  string // the property names
	serviceList, targetList bool   // which side is a list
}

// params names the filter's two parameters.
func (f mapFilter) params() (service, target string) {
	service, target = "serviceProperty", "targetProperty"
	if f.serviceList {
		service = "servicePropertyList"
	}
	if f.targetList {
		target = "targetPropertyList"
	}
	return service, target
}

// serviceRole and targetRole name the parameters in error messages, e.g.
// "serviceProperty of mapAttrOnAttr".
func (f mapFilter) serviceRole() string { sk, _ := f.params(); return sk + " of " + f.name }
func (f mapFilter) targetRole() string  { _, tk := f.params(); return tk + " of " + f.name }

func mapSpec(f mapFilter, doc string) Spec {
	sk, tk := f.params()
	return Spec{Name: f.name, Params: []string{sk, tk}, Doc: doc, Pure: true, New: func(p Params) (Filter, error) {
		g := f
		var err error
		if g.sp, err = p.RequireStr(sk); err != nil {
			return nil, err
		}
		if g.tp, err = p.RequireStr(tk); err != nil {
			return nil, err
		}
		return PairFilter[mapService, mapTarget](g), nil
	}}
}

// mapService is what mapFilter prepares about a service.
type mapService struct {
	v   any
	id  int32   // the value's id (0 when err)
	ids []int32 // the ids of the list's elements (serviceList)
	err error   // the attribute is missing, forced only by a non-empty target list
}

// mapTarget is what mapFilter prepares about a target.
type mapTarget struct {
	v   any
	id  int32
	ids []int32 // targetList
}

// Service implements Predicate.
func (f mapFilter) Service(env *Env, name string, ids *ValueIDs) (ServiceCheck[mapService], error) {
	s, err := nixService(env, name)
	var v any
	if err == nil {
		var ok bool
		if v, ok = s.Attr(f.sp); !ok {
			err = attrMissing(s, f.sp, f.serviceRole())
		}
	}
	if err != nil {
		if f.targetList {
			return ServiceCheck[mapService]{State: mapService{err: err}}, nil
		}
		return ServiceCheck[mapService]{}, err
	}
	ms := mapService{v: v, id: ids.ID(v)}
	if f.serviceList {
		l, ok := v.([]any)
		if !ok {
			return ServiceCheck[mapService]{}, fmt.Errorf("attribute %s of service %s is %s, expected a list (%s)", f.sp, name, nixKind(v), f.serviceRole())
		}
		if len(l) == 0 {
			return ServiceCheck[mapService]{RejectAll: f.sp + " is empty"}, nil
		}
		ms.ids = make([]int32, len(l))
		for k, e := range l {
			ms.ids[k] = ids.ID(e)
		}
	}
	return ServiceCheck[mapService]{State: ms, Class: ms.id}, nil
}

// Target implements Predicate.
func (f mapFilter) Target(_ *Env, t *model.Target, ids *ValueIDs) (mapTarget, error) {
	v, err := nixTargetProp(t, f.tp, f.targetRole())
	if err != nil {
		return mapTarget{}, err
	}
	mt := mapTarget{v: v}
	if !f.targetList {
		mt.id = ids.ID(v)
		return mt, nil
	}
	l, ok := v.([]any)
	if !ok {
		return mapTarget{}, fmt.Errorf("property %s of target %s is %s, expected a list (%s)", f.tp, t.Name, nixKind(v), f.targetRole())
	}
	mt.ids = make([]int32, len(l))
	for k, e := range l {
		mt.ids[k] = ids.ID(e)
	}
	return mt, nil
}

// Fits implements Predicate.
func (f mapFilter) Fits(s mapService, t mapTarget) (bool, error) {
	switch {
	case f.targetList:
		if len(t.ids) > 0 && s.err != nil {
			return false, s.err
		}
		return slices.Contains(t.ids, s.id), nil
	case f.serviceList:
		return slices.Contains(s.ids, t.id), nil
	}
	return s.id == t.id, nil
}

// Reason implements Predicate.
func (f mapFilter) Reason(s mapService, t mapTarget) string {
	switch {
	case f.targetList:
		shown := "<missing>"
		if s.err == nil {
			shown = show(s.v)
		}
		return fmt.Sprintf("%s %s not in %s %s", f.sp, shown, f.tp, show(t.v))
	case f.serviceList:
		return fmt.Sprintf("%s %s not in %s %s", f.tp, show(t.v), f.sp, show(s.v))
	}
	return fmt.Sprintf("%s %s != %s %s", f.sp, show(s.v), f.tp, show(t.v))
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
	for i, svc := range in.Services {
		list := in.Lists[i]
		first := i == 0
		switch {
		case first && len(list) == 0:
			return nil, fmt.Errorf("service %s has no candidate target to choose from (head of empty list)", svc)
		case len(list) == 0:
			return nil, fmt.Errorf("Cannot find a target machine! (service %s has no candidate target)", svc)
		}
		k := -1 // the position of the previous service's choice in list
		if !first && len(list) > 1 {
			k = slices.Index(list, prev)
		}
		chosen := list[0]
		if k >= 0 && k+1 < len(list) {
			chosen = list[k+1]
		}
		buf[i] = chosen
		out.Lists[i] = buf[i : i+1 : i+1]
		if env.Explains(svc) {
			var why string
			switch {
			case first:
				why = "first service: its first candidate"
			case len(list) == 1:
				why = "its only candidate"
			case k < 0:
				why = fmt.Sprintf("first candidate (%s, the target of %s, is not a candidate)", candName(in, prev), prevSvc)
			case k+1 < len(list):
				why = fmt.Sprintf("the candidate after %s, the target of %s", candName(in, prev), prevSvc)
			default:
				why = fmt.Sprintf("wrapped around after %s, the target of %s", candName(in, prev), prevSvc)
			}
			reason := fmt.Sprintf("round robin chose %s (%s)", candName(in, chosen), why)
			for _, x := range list {
				if x != chosen {
					env.Reject(svc, candName(in, x), reason)
				}
			}
		}
		prev, prevSvc = chosen, svc
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
	targets := newTargetValues(in, func(t *model.Target) (any, error) {
		return nixTargetProp(t, f.tp, "targetProperty of order")
	})
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
			v, err := targets.get(env, in, svc, x)
			if err != nil {
				return nil, err
			}
			vals[k] = v
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
