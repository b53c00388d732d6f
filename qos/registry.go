package qos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Params are a step's own parameters from the policy file (everything but
// "filter" and "name"), as JSON-like values.
type Params map[string]any

// Factory builds a filter from its parameters. The registry has already
// refused parameters the Spec does not list; the factory checks their
// values and types and reports a problem with an error naming the parameter.
type Factory func(p Params) (Filter, error)

// Spec describes a filter of a Registry.
type Spec struct {
	Name   string
	Params []string // the parameters it accepts, for checks and error messages
	New    Factory
	Doc    string // one line for help output
	// Pure says the filter may be run again on the same input: it is
	// deterministic and has no side effects (it runs no command and reads
	// no file, clock or network), its result does not depend on
	// Env.Explaining, and runs may overlap (it keeps no state between
	// them). When a run fails because services lost their last candidates,
	// the pipeline runs the policy again with explanations to say why, and
	// a coordinator explains a deployed plan by running its policy again
	// (beside the next plan's run), but only when every step is pure.
	Pure bool
}

// Build checks p against the parameters the filter accepts and builds the
// filter.
func (s Spec) Build(p Params) (Filter, error) {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(s.Params, k) {
			continue
		}
		if len(s.Params) == 0 {
			return nil, fmt.Errorf("unknown parameter %q; %s takes no parameters", k, s.Name)
		}
		valid := slices.Clone(s.Params)
		sort.Strings(valid)
		return nil, fmt.Errorf("unknown parameter %q; valid parameters: %s", k, strings.Join(valid, ", "))
	}
	if s.New == nil {
		return nil, fmt.Errorf("filter %s has no factory", s.Name)
	}
	return s.New(p)
}

// PolicySource fetches the text of a policy named by a "SCHEME:NAME"
// reference: it returns the text and a file name whose extension picks the
// format (.yaml, .yml or .json).
type PolicySource func(name string) (data []byte, file string, err error)

// Registry is a catalog of filters and policy sources. Policies are parsed
// against a registry (LoadPolicy, ParsePolicy, PolicyFromValue), which
// builds each step's filter from its Spec; the registry is a value the
// program makes and passes on, so two pipelines of one program can know
// different filters. A Registry is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	filters map[string]Spec
	sources map[string]PolicySource
}

// NewRegistry returns an empty registry: no filter, no policy source.
func NewRegistry() *Registry {
	return &Registry{filters: map[string]Spec{}, sources: map[string]PolicySource{}}
}

// DefaultRegistry returns a new registry with the built-in filters and the
// "builtin:NAME" source of the shipped policies. Every call returns a fresh
// registry: what a program registers into it stays with that program's
// pipeline. A Go program adds its own filters (the Go equivalent of the
// original's -F catalog) with Register:
//
//	reg := qos.DefaultRegistry()
//	if err := reg.Register(qos.Spec{Name: "onlyEven", Params: []string{"property"}, New: newOnlyEven, Pure: true}); err != nil { ... }
//	policy, err := reg.LoadPolicy("qos.yaml")
func DefaultRegistry() *Registry {
	r := NewRegistry()
	for _, s := range builtinFilters() {
		r.filters[s.Name] = s
	}
	r.sources["builtin"] = builtinPolicySource
	return r
}

// builtinFilters lists the filters of DefaultRegistry.
func builtinFilters() []Spec {
	return []Spec{
		cartesianSpec, mapAttrOnListSpec, mapListOnAttrSpec, mapAttrOnAttrSpec,
		statefulSpec, boundSpec, roundRobinSpec, orderSpec,
		divideSpec, minSetCoverSpec, multiwayCutSpec, graphColSpec,
		spreadSpec, preferPreviousSpec, buildableSpec, externalSpec,
		leastLoadedSpec,
	}
}

// Register adds a filter. Users register their own filters the same way as
// the built-in ones; unlike the original's -F catalog, the catalog extends
// the built-ins instead of replacing them. A name already registered, an
// empty name or a missing factory is an error.
func (r *Registry) Register(s Spec) error {
	if s.Name == "" {
		return fmt.Errorf("register a filter: empty name")
	}
	if s.New == nil {
		return fmt.Errorf("register filter %s: no factory (Spec.New)", s.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.filters[s.Name]; dup {
		return fmt.Errorf("register filter %s: a filter of that name is already registered", s.Name)
	}
	r.filters[s.Name] = s
	return nil
}

// Lookup returns a registered filter.
func (r *Registry) Lookup(name string) (Spec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.filters[name]
	return s, ok
}

// Names returns the registered filter names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.filters))
	for n := range r.filters {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// AddSource makes LoadPolicy understand "SCHEME:NAME" policy references,
// replacing any source of that scheme.
func (r *Registry) AddSource(scheme string, fetch PolicySource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources[scheme] = fetch
}

func (r *Registry) source(scheme string) PolicySource {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.sources[scheme]
}

// Step builds one configured step of a registered filter, as a policy file
// step {filter: NAME, ...params} would be (for a step a program adds, such
// as gendist's --filter-buildable); label is its name in explanations ("" =
// the filter name).
func (r *Registry) Step(filter, label string, p Params) (*Step, error) {
	spec, ok := r.Lookup(filter)
	if !ok {
		return nil, fmt.Errorf("unknown filter %q; valid filters: %s", filter, strings.Join(r.Names(), ", "))
	}
	if p == nil {
		p = Params{}
	}
	f, err := spec.Build(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filter, err)
	}
	return &Step{Filter: filter, Name: label, Params: p, Pure: spec.Pure, impl: f}, nil
}
