package qos

import (
	"github.com/dydisnix/dydisnix/model"
)

// Filter is one step of a QoS policy: it maps a candidate distribution to a
// new one. A filter must not modify its input; it returns new Candidates
// (Derive) or the input itself when nothing changes. A target that does not
// fit a service is not an error: the filter drops it and, when env.Explaining
// is true, says why with env.Reject.
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
	// Explaining is true when the run records explanations.
	Explaining bool
	// explain collects the reasons; nil when not explaining.
	explain *Explanation
}

// Reject records why a step removed target from service's candidates. It is
// a no-op unless Explaining; callers that build the reason with fmt should
// check Explaining first.
func (e *Env) Reject(service, target, reason string) {
	if e.explain != nil {
		e.explain.reject(e.Step, service, target, reason)
	}
}

// Note records a remark about a service that is not a rejection (for
// example "kept on previous target t"). A no-op unless Explaining.
func (e *Env) Note(service, note string) {
	if e.explain != nil {
		e.explain.note(e.Step, service, note)
	}
}
