package qos

import (
	"context"

	"github.com/dydisnix/dydisnix/model"
)

// Filter is one step of a QoS policy: it maps a candidate distribution to a
// new one. A filter must not modify its input, not even one list of it in
// place: lists may share their backing arrays with other services' lists
// (the cartesian product shares one list for every service). It returns new
// Candidates (Derive) or the input itself when nothing changes. A target
// that does not fit a service is not an error: the filter drops it and, when
// env.Explaining is true, says why with env.Reject.
type Filter interface {
	Apply(env *Env, in *Candidates) (*Candidates, error)
}

// FilterFunc adapts a function to Filter.
type FilterFunc func(env *Env, in *Candidates) (*Candidates, error)

// Apply calls f.
func (f FilterFunc) Apply(env *Env, in *Candidates) (*Candidates, error) { return f(env, in) }

// Env is what the pipeline gives every step besides the candidates.
type Env struct {
	Services       model.Services
	Infrastructure model.Infrastructure
	// Previous is the distribution of the last deployment, nil when there is none.
	Previous model.Distribution
	// Step is the label of the running step (its name, else its filter).
	Step string
	// StepIndex is the 1-based position of the running step in the policy
	// (0 outside a policy run).
	StepIndex int
	// Explaining is true when the run records explanations.
	Explaining bool
	// Context is Input.Context: steps that run evaluators stop when it is
	// done (nil = never).
	Context context.Context
	// explain collects the reasons; nil when not explaining.
	explain *Explanation
	// explainOnly limits the explanation to some services (nil = all).
	explainOnly map[string]bool

	// lazily built lookup tables (see TargetOf)
	targetNames []string
	tcacheStrs  *Strings
	tcache      []*model.Target // by Strings index; nil = not a target
	tcacheDone  int             // number of Strings entries resolved
}

// Reject records why a step removed target from service's candidates. It is
// a no-op unless Explaining; callers that build the reason with fmt should
// check Explaining first.
func (e *Env) Reject(service, target, reason string) {
	if e.Explains(service) {
		e.explain.reject(e.StepIndex, e.Step, service, target, reason)
	}
}

// Note records a remark about a service that is not a rejection (for
// example "kept on previous target t"). A no-op unless Explaining.
func (e *Env) Note(service, note string) {
	if e.Explains(service) {
		e.explain.note(e.StepIndex, e.Step, service, note)
	}
}

// Explains reports whether the run records explanations for service (the
// run explains, and the service is among Input.ExplainServices when those
// are given). Filters check it before they build a reason.
func (e *Env) Explains(service string) bool {
	if e.explain == nil {
		return false
	}
	return e.explainOnly == nil || e.explainOnly[service]
}

// TargetNames returns the infrastructure's target names in byte-wise order
// (computed once per Env).
func (e *Env) TargetNames() []string {
	if e.targetNames == nil {
		e.targetNames = e.Infrastructure.Names()
	}
	return e.targetNames
}

// TargetOf returns the infrastructure target a candidate names (the record's
// target for a {target, container} record), or nil when the name is not a
// target of the infrastructure. The lookup is an array index after the first
// call for a Strings table, so filters may call it per candidate.
func (e *Env) TargetOf(strs *Strings, x Cand) *model.Target {
	if e.tcacheStrs != strs {
		e.tcacheStrs, e.tcache, e.tcacheDone = strs, nil, 0
	}
	if int(x.Target) >= e.tcacheDone {
		n := strs.Len()
		if cap(e.tcache) < n {
			grown := make([]*model.Target, e.tcacheDone, n+n/4)
			copy(grown, e.tcache[:e.tcacheDone])
			e.tcache = grown
		}
		e.tcache = e.tcache[:n]
		for i := e.tcacheDone; i < n; i++ {
			e.tcache[i] = e.Infrastructure[strs.Name(int32(i))]
		}
		e.tcacheDone = n
	}
	return e.tcache[x.Target]
}

// TargetIndex returns the position of the candidate's target in
// TargetNames, or -1 when it is not a target of the infrastructure.
func (e *Env) TargetIndex(strs *Strings, x Cand) int {
	t := e.TargetOf(strs, x)
	if t == nil {
		return -1
	}
	names := e.TargetNames()
	lo, hi := 0, len(names)
	for lo < hi {
		m := (lo + hi) / 2
		if names[m] < t.Name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(names) && names[lo] == t.Name {
		return lo
	}
	return -1
}

// PropertyNumber converts a property value to a number as the original C
// tools do: a scalar is turned into text and parsed with C atoi ("1.5" → 1,
// "abc" → 0, true → 0). ok is false for a list, attribute set or null, which
// the C tools treat as an absent property.
func PropertyNumber(v any) (n int64, ok bool) {
	text, ok := model.ScalarText(v)
	if !ok {
		return 0, false
	}
	return model.Atoi(text), true
}
