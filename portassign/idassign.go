package portassign

import (
	"fmt"

	"github.com/dydisnix/dydisnix/model"
)

// IDRequest is the input of AssignIDs.
type IDRequest struct {
	// Services is the services model.
	Services model.Services
	// Distribution selects distribution mode when non-nil: only distributed
	// services get IDs, and machine scope is available. Nil selects services
	// mode: every service of the model is considered (global scope only).
	Distribution model.Distribution
	// Resources is the ID resources model.
	Resources Resources
	// Previous is the previous ids file (nil: none).
	Previous *IDs
	// ServiceProperty names the list property through which a service asks
	// for IDs; "" means DefaultIDServiceProperty.
	ServiceProperty string
}

// DepletedError reports that a resource has no free ID left for a service.
// Its message starts with the reference's "The amount of IDs is depleted!".
type DepletedError struct {
	Resource string
	Service  string
	Target   string // "" in global scope
	Min, Max int64
	Step     int64
	Used     int // IDs held in the batch
	HeldBack int // IDs released in this run and held back
}

// Error implements error.
func (e *DepletedError) Error() string {
	where := ""
	if e.Target != "" {
		where = fmt.Sprintf(" on target %s", e.Target)
	}
	held := ""
	if e.HeldBack > 0 {
		held = fmt.Sprintf(", %d released in this run and held back for one generation", e.HeldBack)
	}
	return fmt.Sprintf("The amount of IDs is depleted! resource %s%s: no free ID in %d..%d (step %d) for service %s: %d in use%s",
		e.Resource, where, e.Min, e.Max, e.Step, e.Service, e.Used, held)
}

// ScopeError reports a resource scope the assigner does not know (or
// machine scope in services mode).
type ScopeError struct {
	Resource, Scope string
}

// Error implements error.
func (e *ScopeError) Error() string {
	return fmt.Sprintf("Unknown scope: %s (resource %s; expected \"global\", or \"machine\" with a distribution)", e.Scope, e.Resource)
}

// AssignIDs computes the new ids file. It follows dydisnix-id-assign
// (dydisnix.md §3.5) with the deviations documented in docs/portassign.md:
// sorted iteration everywhere, step honoured, a full search cycle detects
// exhaustion (no endless loop), a remembered last ID outside [min, max]
// restarts at min, a service with several targets keeps its ID, duplicate
// IDs in the previous file are resolved (the first service in sorted order
// keeps the ID), and IDs released in this run are not handed to another
// service in the same run. The input is never modified.
func AssignIDs(req IDRequest) (*IDs, error) {
	prop := req.ServiceProperty
	if prop == "" {
		prop = DefaultIDServiceProperty
	}
	a := &idAssigner{req: req, prop: prop, out: req.Previous.Clone(), held: map[string]map[int64]bool{}}
	if req.Distribution != nil {
		a.targetsOf = map[string][]string{}
		a.hosted = map[string][]string{}
		for _, svc := range req.Distribution.Names() {
			ts := uniq(req.Distribution.Targets(svc))
			a.targetsOf[svc] = ts
			for _, t := range ts {
				a.hosted[t] = append(a.hosted[t], svc)
			}
		}
	}
	for _, r := range model.SortedKeys(req.Resources) {
		res := req.Resources[r]
		switch {
		case res.Scope == ScopeGlobal:
		case res.Scope == ScopeMachine && req.Distribution != nil:
		default:
			return nil, &ScopeError{Resource: r, Scope: res.Scope}
		}
	}
	a.invalidate()
	for _, r := range model.SortedKeys(req.Resources) {
		if err := a.assign(req.Resources[r]); err != nil {
			return nil, err
		}
	}
	return a.out, nil
}

type idAssigner struct {
	req       IDRequest
	prop      string
	out       *IDs
	targetsOf map[string][]string // distribution mode: service → distinct targets
	hosted    map[string][]string // distribution mode: target → services (sorted)
	held      map[string]map[int64]bool
}

// requires reports whether service svc asks for resource r.
func (a *idAssigner) requires(svc, r string) bool {
	s, ok := a.req.Services[svc]
	if !ok {
		return false
	}
	v, ok := s.Attr(a.prop)
	if !ok {
		return false
	}
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, e := range list {
		if e == r {
			return true
		}
	}
	return false
}

// eligible reports whether svc takes part in this run.
func (a *idAssigner) eligible(svc string) bool {
	s, ok := a.req.Services[svc]
	if !ok {
		return false
	}
	if a.req.Distribution == nil {
		// Services mode looks services up by their name attribute.
		return s.Name == svc
	}
	return len(a.targetsOf[svc]) > 0
}

// invalidate is phase 1: drop the assignments and last-ID slots that no
// longer apply, remembering released IDs so they are held back.
func (a *idAssigner) invalidate() {
	for _, r := range model.SortedKeys(a.out.IDs) {
		table := a.out.IDs[r]
		res, ok := a.req.Resources[r]
		for _, svc := range model.SortedKeys(table) {
			id := table[svc]
			if ok && a.eligible(svc) && a.requires(svc, r) && id >= res.Min && id <= res.Max {
				continue
			}
			delete(table, svc)
			a.hold(r, id)
		}
		if ok {
			a.dropDuplicates(res, table)
		}
		if len(table) == 0 {
			delete(a.out.IDs, r)
		}
	}
	for r := range a.out.LastAssignments {
		if _, ok := a.req.Resources[r]; !ok {
			delete(a.out.LastAssignments, r)
		}
	}
	if a.req.Distribution == nil {
		a.out.LastAssignmentsPerTarget = map[string]map[string]int64{}
		return
	}
	for t, m := range a.out.LastAssignmentsPerTarget {
		for r := range m {
			if _, ok := a.req.Resources[r]; !ok {
				delete(m, r)
			}
		}
		if len(m) == 0 || len(a.hosted[t]) == 0 {
			delete(a.out.LastAssignmentsPerTarget, t)
		}
	}
}

// dropDuplicates removes retained IDs that collide (in the resource's
// scope) with the ID of a service earlier in sorted order.
func (a *idAssigner) dropDuplicates(res Resource, table map[string]int64) {
	if res.Scope == ScopeMachine && a.req.Distribution != nil {
		perTarget := map[string]map[int64]bool{}
		for _, svc := range model.SortedKeys(table) {
			id := table[svc]
			clash := false
			for _, t := range a.targetsOf[svc] {
				if perTarget[t][id] {
					clash = true
				}
			}
			if clash {
				delete(table, svc)
				continue
			}
			for _, t := range a.targetsOf[svc] {
				if perTarget[t] == nil {
					perTarget[t] = map[int64]bool{}
				}
				perTarget[t][id] = true
			}
		}
		return
	}
	seen := map[int64]bool{}
	for _, svc := range model.SortedKeys(table) {
		id := table[svc]
		if seen[id] {
			delete(table, svc)
			continue
		}
		seen[id] = true
	}
}

func (a *idAssigner) hold(r string, id int64) {
	if a.held[r] == nil {
		a.held[r] = map[int64]bool{}
	}
	a.held[r][id] = true
}

// assign is phase 2 for one resource.
func (a *idAssigner) assign(res Resource) error {
	table := a.out.IDs[res.Name]
	if table == nil {
		table = map[string]int64{}
		a.out.IDs[res.Name] = table
	}
	if res.Scope == ScopeGlobal {
		var names []string
		if a.req.Distribution != nil {
			for _, svc := range a.req.Distribution.Names() {
				if len(a.targetsOf[svc]) > 0 {
					names = append(names, svc)
				}
			}
		} else {
			names = a.req.Services.Names()
		}
		used := map[int64]bool{}
		for _, svc := range names {
			if id, ok := table[svc]; ok {
				used[id] = true
			}
		}
		slot := slot{m: a.out.LastAssignments, key: res.Name}
		for _, svc := range names {
			if !a.eligible(svc) || !a.requires(svc, res.Name) {
				continue
			}
			if _, ok := table[svc]; ok {
				continue
			}
			id, err := a.next(res, slot, used, svc, "")
			if err != nil {
				return err
			}
			table[svc] = id
			used[id] = true
		}
		return nil
	}
	// Machine scope: an ID is unique among the services of each target; a
	// service on several targets gets an ID free on all of them.
	used := map[string]map[int64]bool{}
	for t, svcs := range a.hosted {
		used[t] = map[int64]bool{}
		for _, svc := range svcs {
			if id, ok := table[svc]; ok {
				used[t][id] = true
			}
		}
	}
	for _, t := range model.SortedKeys(a.hosted) {
		last := a.out.LastAssignmentsPerTarget[t]
		if last == nil {
			last = map[string]int64{}
			a.out.LastAssignmentsPerTarget[t] = last
		}
		slot := slot{m: last, key: res.Name}
		for _, svc := range a.hosted[t] {
			if !a.eligible(svc) || !a.requires(svc, res.Name) {
				continue
			}
			if _, ok := table[svc]; ok {
				continue
			}
			taken := used[t]
			if ts := a.targetsOf[svc]; len(ts) > 1 {
				taken = map[int64]bool{}
				for _, u := range ts {
					for id := range used[u] {
						taken[id] = true
					}
				}
			}
			id, err := a.next(res, slot, taken, svc, t)
			if err != nil {
				return err
			}
			table[svc] = id
			for _, u := range a.targetsOf[svc] {
				used[u][id] = true
			}
		}
	}
	return nil
}

// slot is a last-ID slot: a key of a map that may be absent.
type slot struct {
	m   map[string]int64
	key string
}

// next finds the next free ID after the slot's last ID, stepping by
// res.Step and wrapping to res.Min, and records it in the slot. It visits
// every reachable ID at most once.
func (a *idAssigner) next(res Resource, s slot, used map[int64]bool, svc, target string) (int64, error) {
	held := a.held[res.Name]
	// advance steps forward, wrapping to min past max (and restarting at
	// min from outside the range); written so it cannot overflow.
	advance := func(id int64) int64 {
		if id < res.Min || id >= res.Max || uint64(res.Max-id) < uint64(res.Step) {
			return res.Min
		}
		return id + res.Step
	}
	id := res.Min
	if last, ok := s.m[s.key]; ok {
		id = advance(last)
	}
	// IDs reachable from min by stepping, plus the partial chain from the
	// start when the start is off the min-aligned grid.
	limit := uint64(res.Max-res.Min)/uint64(res.Step) + 1
	if limit > 1<<62 {
		limit = 1 << 62
	}
	limit += limit
	for i := uint64(0); i < limit; i++ {
		if !used[id] && !held[id] {
			s.m[s.key] = id
			return id, nil
		}
		id = advance(id)
	}
	inUse := 0
	for id := range used {
		if id >= res.Min && id <= res.Max {
			inUse++
		}
	}
	return 0, &DepletedError{Resource: res.Name, Service: svc, Target: target, Min: res.Min, Max: res.Max, Step: res.Step, Used: inUse, HeldBack: len(held)}
}

func uniq(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
