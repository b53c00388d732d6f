package qos

import (
	"github.com/dydisnix/dydisnix/model"
)

// The filter library has two kinds of filters. Whole-list placers (divide,
// divideRoundRobin, minsetcover, multiwaycut, graphcol, spread,
// preferPrevious, order) look at every list at once and implement Filter
// themselves. Per-pair filters (mapAttrOnList, mapListOnAttr, mapAttrOnAttr,
// filterBuildable, and a user's own) only decide whether one target fits one
// service: they are Predicates, and PairFilter runs them all with one loop,
// in the manner of Nomad's feasibility checkers. The loop owns what every
// such filter needs and none should write again:
//
//   - the per-target cache: Predicate.Target runs once per target and step;
//   - the per-class cache: services of one class (ServiceCheck.Class) get
//     the answer computed for the first of them, per target, and services of
//     one class with the same candidate list share the kept list;
//   - the recording of rejections: a target that does not fit is passed to
//     Env.Reject with Predicate.Reason, asked only when explaining and
//     formatted once per class and target.

// Predicate is a per-pair filter: for a service and one of its candidate
// targets it says whether the target fits and, when not, why. S is what the
// predicate prepares about a service, T what it prepares about a target.
// Make it a Filter with PairFilter.
type Predicate[S, T any] interface {
	// Service prepares the checks of service name, whose candidate list is
	// not empty. An error stops the step.
	Service(env *Env, name string, ids *ValueIDs) (ServiceCheck[S], error)
	// Target prepares the checks of a target of the infrastructure. The
	// loop calls it once per target and step; an error stops the step
	// when the first pair needs the target.
	Target(env *Env, t *model.Target, ids *ValueIDs) (T, error)
	// Fits reports whether target t fits service s. An error stops the step.
	Fits(s S, t T) (bool, error)
	// Reason says why t does not fit s. The loop asks only when it records
	// the rejection (when the run explains the service).
	Reason(s S, t T) string
}

// ServiceCheck is what Predicate.Service prepares about a service.
type ServiceCheck[S any] struct {
	State S
	// Class groups services that get the same answer for every target,
	// typically the ValueIDs id of the value the predicate compares: the
	// loop asks Fits once per class and target. 0 (the zero value) is a
	// class of its own for every service.
	Class int32
	// RejectAll, when not empty, rejects every candidate of the service for
	// this reason without looking at the targets (as the lazy Nix code never
	// forces them).
	RejectAll string
}

// PairFilter makes a Filter of a predicate: every service keeps, in order,
// the candidates whose target fits. A candidate that is not a target of the
// infrastructure is an error; a {target, container} record is checked by
// its target. A service whose list is empty is not looked at.
func PairFilter[S, T any](p Predicate[S, T]) Filter { return pairFilter[S, T]{p} }

type pairFilter[S, T any] struct{ p Predicate[S, T] }

// Verdicts of the per-class cache.
const (
	verdictUnknown uint8 = iota
	verdictFits
	verdictUnfit
)

func (f pairFilter[S, T]) Apply(env *Env, in *Candidates) (*Candidates, error) {
	var ids ValueIDs
	out := in.Derive()
	targets := newTargetValues(in, func(t *model.Target) (T, error) { return f.p.Target(env, t, &ids) })
	verdicts := map[int32][]uint8{} // class → verdict per target
	type listKey struct {
		p     *Cand
		n     int
		class int32
	}
	shared := map[listKey][]Cand{}
	type reasonKey struct{ class, target int32 }
	reasons := map[reasonKey]string{}
	for i, svc := range in.Services {
		list := in.Lists[i]
		if len(list) == 0 {
			out.Lists[i] = list
			continue
		}
		sc, err := f.p.Service(env, svc, &ids)
		if err != nil {
			return nil, model.RedactError(err)
		}
		explain := env.Explains(svc)
		if sc.RejectAll != "" {
			out.Lists[i] = []Cand{}
			if explain {
				for _, x := range list {
					env.Reject(svc, candName(in, x), sc.RejectAll)
				}
			}
			continue
		}
		var row []uint8
		key := listKey{&list[0], len(list), sc.Class}
		if sc.Class != 0 {
			if r, ok := shared[key]; ok && !explain {
				out.Lists[i] = r
				continue
			}
			if row = verdicts[sc.Class]; row == nil {
				row = make([]uint8, in.Strings.Len())
				verdicts[sc.Class] = row
			}
		}
		kept := make([]Cand, 0, len(list))
		for _, x := range list {
			var v uint8
			if row != nil {
				v = row[x.Target] // known: the target was read without error
			}
			if v == verdictUnknown {
				t, err := targets.get(env, in, svc, x)
				if err != nil {
					return nil, model.RedactError(err)
				}
				ok, err := f.p.Fits(sc.State, t)
				if err != nil {
					return nil, model.RedactError(err)
				}
				v = verdictUnfit
				if ok {
					v = verdictFits
				}
				if row != nil {
					row[x.Target] = v
				}
			}
			if v == verdictFits {
				kept = append(kept, x)
				continue
			}
			if !explain {
				continue
			}
			rk := reasonKey{sc.Class, x.Target}
			reason, ok := reasons[rk]
			if !ok {
				t, _ := targets.get(env, in, svc, x) // read above, without error
				reason = f.p.Reason(sc.State, t)
				if sc.Class != 0 {
					reasons[rk] = reason
				}
			}
			env.Reject(svc, candName(in, x), reason)
		}
		if len(kept) == len(list) {
			kept = list // nothing removed: share the input list
		} else {
			kept = kept[:len(kept):len(kept)]
		}
		if sc.Class != 0 {
			shared[key] = kept
		}
		out.Lists[i] = kept
	}
	return out, nil
}

// targetValues computes a value per target of the infrastructure once per
// step, for the candidates of one Candidates table.
type targetValues[T any] struct {
	states  []targetValue[T]
	compute func(*model.Target) (T, error)
}

type targetValue[T any] struct {
	done bool
	v    T
	err  error
}

func newTargetValues[T any](in *Candidates, compute func(*model.Target) (T, error)) *targetValues[T] {
	return &targetValues[T]{states: make([]targetValue[T], in.Strings.Len()), compute: compute}
}

// get returns the value of candidate x's target; svc names the service in
// the error for a candidate that is not a target of the infrastructure.
func (tv *targetValues[T]) get(env *Env, in *Candidates, svc string, x Cand) (T, error) {
	st := &tv.states[x.Target]
	if !st.done {
		st.done = true
		t, err := nixTarget(env, in, svc, x)
		if err == nil {
			st.v, err = tv.compute(t)
		}
		st.err = err
	}
	return st.v, st.err
}
