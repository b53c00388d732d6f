package qos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// Policy is a parsed QoS policy: a pipeline of filter steps.
type Policy struct {
	// File is where the policy came from ("builtin:NAME" for a shipped one,
	// "" for one built in Go).
	File string
	// Description is the policy's optional description.
	Description string
	// Steps are the steps in order.
	Steps []*Step
}

// Step is one configured filter of a policy.
type Step struct {
	// Index is the 1-based position in the policy.
	Index int
	// Filter is the registered filter name.
	Filter string
	// Name is the optional label given in the policy.
	Name string
	// Params are the step's own parameters.
	Params Params
	// Pure is the filter's Spec.Pure: the step may be run again on the
	// same input (see Spec.Pure).
	Pure bool
	impl Filter
}

// Label is the step's name, else its filter.
func (s *Step) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Filter
}

// reserved parameters come from the pipeline, never from the policy file.
var reserved = map[string]bool{"services": true, "infrastructure": true, "distribution": true, "previousDistribution": true}

// LoadPolicy reads a policy with DefaultRegistry (see Registry.LoadPolicy).
func LoadPolicy(file string) (*Policy, error) {
	return DefaultRegistry().LoadPolicy(file)
}

// ParsePolicy parses policy text with DefaultRegistry (see
// Registry.ParsePolicy).
func ParsePolicy(data []byte, format model.Format, file string) (*Policy, error) {
	return DefaultRegistry().ParsePolicy(data, format, file)
}

// LoadPolicy reads a policy file: YAML (.yaml, .yml), JSON (.json) or a .nix
// file that evaluates to the same shape, or a QoS model in Nix of the
// original's form (see LoadQoS). "SCHEME:NAME" names a policy of a source
// added with AddSource ("builtin:NAME" for a shipped policy in
// DefaultRegistry), unless a file of that name exists.
func (r *Registry) LoadPolicy(file string) (*Policy, error) {
	return r.LoadQoS(file, NixModelOptions{})
}

// LoadQoS reads what -q names, as LoadPolicy does, evaluating .nix files
// with o. A .nix file that is a function of the original's QoS model form
// {services, infrastructure, initialDistribution, previousDistribution,
// filters, lib}: ... becomes a one-step policy whose step (filter
// "qosModel") evaluates the model on the candidate distribution, with the
// filters of o.Filters (the -F catalog) when given. o.Filters with any
// other policy is an error: only a QoS model in Nix calls filters by name.
func (r *Registry) LoadQoS(file string, o NixModelOptions) (*Policy, error) {
	ctx := o.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if f, err := model.FormatOf(file); err == nil && f == model.FormatNix && fileExists(file) {
		isModel, err := probeNixModel(ctx, file, o.Nix)
		if err != nil {
			return nil, err
		}
		if isModel {
			return newNixModelPolicy(file, o)
		}
	}
	if o.Filters != "" {
		return nil, fmt.Errorf("%s: a filter catalog (-F %s) needs a QoS model in Nix ({services, infrastructure, initialDistribution, previousDistribution, filters, lib}: ...)", file, o.Filters)
	}
	return r.loadPolicy(ctx, file, o.Nix)
}

func (r *Registry) loadPolicy(ctx context.Context, file string, nix model.NixOptions) (*Policy, error) {
	if scheme, name, ok := strings.Cut(file, ":"); ok && len(scheme) > 1 && !strings.ContainsAny(scheme, `/\.`) && !fileExists(file) {
		fetch := r.source(scheme)
		if fetch == nil {
			return nil, fmt.Errorf("%s: unknown policy source %q", file, scheme)
		}
		data, src, err := fetch(name)
		if err != nil {
			return nil, err
		}
		format, err := model.FormatOf(src)
		if err != nil {
			return nil, err
		}
		return r.ParsePolicy(data, format, file)
	}
	v, err := model.LoadValueContext(ctx, file, model.KindPlain, nil, nix)
	if err != nil {
		return nil, err
	}
	return r.PolicyFromValue(v, file)
}

func fileExists(f string) bool {
	_, err := os.Stat(f)
	return err == nil
}

// ParsePolicy parses policy text in the given format (json or yaml); file
// names it in error messages.
func (r *Registry) ParsePolicy(data []byte, format model.Format, file string) (*Policy, error) {
	v, err := model.DecodeValue(data, format, file)
	if err != nil {
		return nil, err
	}
	return r.PolicyFromValue(v, file)
}

// PolicyFromValue builds a policy from its JSON-like form
// {"steps": [{"filter": NAME, "name"?: LABEL, ...params}], "description"?: TEXT}.
// Unknown filters and parameters are errors that list the valid ones.
func (r *Registry) PolicyFromValue(v any, file string) (*Policy, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, perr(file, "", "expected a QoS policy {steps: [...]}, got %s", model.TypeName(v))
	}
	p := &Policy{File: file}
	for _, k := range model.SortedKeys(top) {
		switch k {
		case "steps":
		case "description":
			d, ok := top[k].(string)
			if !ok && top[k] != nil {
				return nil, perr(file, "description", "expected a string, got %s", model.TypeName(top[k]))
			}
			p.Description = d
		default:
			return nil, perr(file, k, "unknown attribute %q: a policy has \"steps\" and an optional \"description\"", k)
		}
	}
	raw, has := top["steps"]
	if !has {
		return nil, perr(file, "", "the policy has no \"steps\" (write \"steps: []\" for the initial distribution unchanged)")
	}
	var list []any
	switch x := raw.(type) {
	case nil:
	case []any:
		list = x
	default:
		return nil, perr(file, "steps", "expected a list of steps, got %s", model.TypeName(raw))
	}
	for i, e := range list {
		st, err := r.stepFromValue(e, i+1, file)
		if err != nil {
			return nil, err
		}
		p.Steps = append(p.Steps, st)
	}
	return p, nil
}

func (r *Registry) stepFromValue(v any, index int, file string) (*Step, error) {
	place := fmt.Sprintf("step %d", index)
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, perr(file, place, "expected {filter: NAME, ...parameters}, got %s", model.TypeName(v))
	}
	fv, has := obj["filter"]
	if !has {
		return nil, perr(file, place, "missing \"filter\"; valid filters: %s", strings.Join(r.Names(), ", "))
	}
	filter, ok := fv.(string)
	if !ok {
		return nil, perr(file, place+".filter", "expected a filter name, got %s", model.TypeName(fv))
	}
	spec, ok := r.Lookup(filter)
	if !ok {
		return nil, perr(file, place, "unknown filter %q; valid filters: %s", filter, strings.Join(r.Names(), ", "))
	}
	st := &Step{Index: index, Filter: filter, Params: Params{}, Pure: spec.Pure}
	place = fmt.Sprintf("step %d (%s)", index, filter)
	if nv, has := obj["name"]; has {
		name, ok := nv.(string)
		if !ok {
			return nil, perr(file, place+".name", "expected a string, got %s", model.TypeName(nv))
		}
		st.Name = name
	}
	for _, k := range model.SortedKeys(obj) {
		if k == "filter" || k == "name" {
			continue
		}
		if reserved[k] {
			return nil, perr(file, place, "parameter %q comes from the pipeline and cannot be set in a policy", k)
		}
		st.Params[k] = obj[k]
	}
	f, err := spec.Build(st.Params)
	if err != nil {
		return nil, perr(file, place, "%v", err)
	}
	st.impl = f
	return st, nil
}

func perr(file, place, format string, args ...any) error {
	return &model.Error{File: file, Place: place, Msg: fmt.Sprintf(format, args...)}
}

// NewStep makes a step from a Go filter, for policies assembled in code
// (for example a user's own filter). The step is not Pure: set Pure when
// the filter may be run again on the same input, or build a registered
// filter's step with Registry.Step.
func NewStep(label string, f Filter) *Step {
	return &Step{Filter: label, impl: f, Params: Params{}}
}

// Prepend returns a copy of the policy with steps added in front.
func (p *Policy) Prepend(steps ...*Step) *Policy {
	q := &Policy{File: p.File, Description: p.Description}
	q.Steps = append(q.Steps, steps...)
	for _, s := range p.Steps {
		c := *s
		q.Steps = append(q.Steps, &c)
	}
	for i, s := range q.Steps {
		s.Index = i + 1
	}
	return q
}

// EmptyPolicy says what Run does when a service ends without a candidate.
type EmptyPolicy int

const (
	// RejectEmpty (the default) makes a service without a candidate an
	// error (*NoCandidateError), whether a step removed its last candidate
	// or it never had one.
	RejectEmpty EmptyPolicy = iota
	// RejectRemoved makes it an error only when a step removed the last
	// candidate; a service whose initial list was empty (no targets in the
	// infrastructure, or an empty list in the initial distribution) is kept
	// with [] and reported in Result.Warnings, as the original does.
	RejectRemoved
	// AllowEmpty keeps every service, as the original's filters do, and
	// reports the empty ones in Result.Warnings.
	AllowEmpty
)

// Input is what a policy run starts from.
type Input struct {
	Services       model.Services
	Infrastructure model.Infrastructure
	// Initial is the initial candidate distribution; nil = the cartesian
	// product of the services and the targets.
	Initial model.Distribution
	// Previous is the distribution of the last deployment; nil = none.
	Previous model.Distribution
	// Explain records why every candidate was removed (Result.Explanation).
	Explain bool
	// ExplainServices limits the explanation to these services (nil = all);
	// explaining a few services of a large run is cheap.
	ExplainServices []string
	// Empty says what to do with a service left without a candidate.
	Empty EmptyPolicy
	// Context stops steps that run evaluators (a QoS model in Nix);
	// nil = context.Background().
	Context context.Context
}

// Result is the outcome of a policy run.
type Result struct {
	Distribution model.Distribution
	// Explanation is set when Input.Explain was.
	Explanation *Explanation
	// Empty lists the services without a candidate (kept because of
	// Input.Empty), in byte-wise order.
	Empty []EmptyService
	// Warnings are remarks for the user (services left without a target
	// that Input.Empty allowed).
	Warnings []string
}

// EmptyService is a service left without a candidate.
type EmptyService struct {
	Service string
	// StepIndex and Step name the step that removed the last candidate
	// (0 and "" when the initial list was already empty).
	StepIndex int
	Step      string
	// Last are the candidates the step removed.
	Last []string
	// Reasons are the step's reasons for removing them, when known.
	Reasons []string
}

func (e EmptyService) String() string {
	if e.StepIndex == 0 {
		return fmt.Sprintf("service %s has no candidate target: its initial candidate list is empty", e.Service)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "service %s has no candidate target left: step %d (%s) removed the last ", e.Service, e.StepIndex, e.Step)
	if len(e.Last) == 1 {
		b.WriteString("candidate ")
	} else {
		b.WriteString("candidates ")
	}
	const max = 5
	for i, t := range e.Last {
		if i == max {
			fmt.Fprintf(&b, ", and %d more", len(e.Last)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t)
		if i < len(e.Reasons) && e.Reasons[i] != "" {
			fmt.Fprintf(&b, " (%s)", e.Reasons[i])
		}
	}
	return b.String()
}

// NoCandidateError reports services left without a candidate target.
type NoCandidateError struct {
	Services []EmptyService
}

func (e *NoCandidateError) Error() string {
	const max = 10
	var b strings.Builder
	for i, s := range e.Services {
		if i == max {
			fmt.Fprintf(&b, "\n... and %d more services without a candidate", len(e.Services)-max)
			break
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// StepError is an error of one step of a policy run.
type StepError struct {
	Index  int
	Label  string
	Filter string
	Err    error
	// Emptied are the services an earlier step left without a candidate
	// (often the cause of the error).
	Emptied []EmptyService
}

func (e *StepError) Error() string {
	var b strings.Builder
	if e.Filter == NixModelFilter {
		b.WriteString(e.Err.Error())
	} else if e.Label != e.Filter {
		fmt.Fprintf(&b, "policy step %d (%s, filter %s): %v", e.Index, e.Label, e.Filter, e.Err)
	} else {
		fmt.Fprintf(&b, "policy step %d (%s): %v", e.Index, e.Label, e.Err)
	}
	for i, s := range e.Emptied {
		if i == 5 {
			fmt.Fprintf(&b, "\n... and %d more services without a candidate", len(e.Emptied)-5)
			break
		}
		b.WriteString("\nbefore this step, ")
		b.WriteString(s.String())
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// Run computes the distribution: it starts from Input.Initial (or the
// cartesian product) and applies every step in order. When the run fails
// and Input.Explain was set, the Result is returned beside the error with
// the explanation of the run so far (and no distribution).
func (p *Policy) Run(in Input) (*Result, error) {
	res, empty, err := p.run(in, in.Explain)
	var se *StepError
	if errors.As(err, &se) && len(se.Emptied) > 0 && !in.Explain && p.Pure() {
		// Run again, explaining the emptied services, to say why their
		// last candidates went.
		again := in
		again.ExplainServices = nil
		for _, e := range se.Emptied {
			again.ExplainServices = append(again.ExplainServices, e.Service)
		}
		if _, _, err2 := p.run(again, true); errors.As(err2, &se) {
			return nil, err2
		}
	}
	if err != nil {
		if res != nil && res.Explanation != nil {
			return &Result{Explanation: res.Explanation}, err
		}
		return nil, err
	}
	if len(empty) == 0 {
		return res, nil
	}
	var fatal []EmptyService
	for _, e := range empty {
		switch {
		case in.Empty == AllowEmpty, in.Empty == RejectRemoved && e.StepIndex == 0:
			res.Empty = append(res.Empty, e)
			res.Warnings = append(res.Warnings, e.String())
		default:
			fatal = append(fatal, e)
		}
	}
	if len(fatal) == 0 {
		return res, nil
	}
	if !in.Explain && p.Pure() {
		// Run again, explaining the emptied services, to say why their
		// last candidates went.
		rerun := in
		rerun.ExplainServices = nil
		for _, e := range fatal {
			rerun.ExplainServices = append(rerun.ExplainServices, e.Service)
		}
		if _, again, err := p.run(rerun, true); err == nil && len(again) == len(empty) {
			byName := map[string]EmptyService{}
			for _, e := range again {
				byName[e.Service] = e
			}
			for i := range fatal {
				if e, ok := byName[fatal[i].Service]; ok {
					fatal[i] = e
				}
			}
		}
	}
	if in.Explain {
		// the explanation of the failed run, for the user
		return &Result{Explanation: res.Explanation}, &NoCandidateError{Services: fatal}
	}
	return nil, &NoCandidateError{Services: fatal}
}

// Pure reports whether every step may be run again on the same input with
// the same result: a failed run is repeated with explanations on, and a
// planned deployment is explained on request by running it again.
func (p *Policy) Pure() bool {
	for _, s := range p.Steps {
		if !s.Pure {
			return false
		}
	}
	return true
}

func (p *Policy) run(in Input, explain bool) (*Result, []EmptyService, error) {
	strs := NewStrings()
	targets := in.Infrastructure.Names()
	for _, t := range targets {
		strs.Intern(t)
	}
	var cur *Candidates
	if in.Initial == nil {
		cur = cartesian(strs, in.Services.Names(), len(targets))
	} else {
		cur = FromDistribution(strs, in.Initial)
	}
	env := &Env{Services: in.Services, Infrastructure: in.Infrastructure, Previous: in.Previous, Explaining: explain, targetNames: targets, Context: in.Context}
	var ex *Explanation
	if explain {
		ex = &Explanation{Policy: p.File, Services: map[string]*ServiceExplanation{}}
		env.explain = ex
		if in.ExplainServices != nil {
			env.explainOnly = map[string]bool{}
			for _, s := range in.ExplainServices {
				env.explainOnly[s] = true
			}
			ex.only = env.explainOnly
		}
		for i, s := range cur.Services {
			if env.Explains(s) {
				ex.svc(s).Initial = ex.names(cur, cur.Lists[i])
			}
		}
	}
	type emptied struct {
		step  int
		label string
		last  []Cand
		from  *Candidates
	}
	gone := map[string]emptied{}
	for i, s := range cur.Services {
		if len(cur.Lists[i]) == 0 {
			gone[s] = emptied{}
		}
	}
	for _, st := range p.Steps {
		if st.impl == nil {
			return nil, nil, fmt.Errorf("policy step %d (%s): filter not configured", st.Index, st.Label())
		}
		env.Step, env.StepIndex = st.Label(), st.Index
		if ex != nil {
			ex.Steps = append(ex.Steps, StepInfo{Index: st.Index, Label: st.Label(), Filter: st.Filter})
		}
		out, err := st.impl.Apply(env, cur)
		if err != nil {
			serr := &StepError{Index: st.Index, Label: st.Label(), Filter: st.Filter, Err: err}
			for i, s := range cur.Services {
				if g, ok := gone[s]; ok && g.step > 0 && len(cur.Lists[i]) == 0 {
					serr.Emptied = append(serr.Emptied, emptyService(s, g.step, g.label, g.from, g.last, ex))
					if ex != nil && env.Explains(s) {
						ex.svc(s).EmptiedBy = fmt.Sprintf("%d (%s)", g.step, g.label)
					}
				}
			}
			if ex != nil {
				ex.finish(cur, env, in.Previous)
				ex.FailedStep = fmt.Sprintf("%d (%s)", st.Index, st.Label())
				return &Result{Explanation: ex}, nil, serr
			}
			return nil, nil, serr
		}
		if out == nil || len(out.Lists) != len(out.Services) {
			return nil, nil, &StepError{Index: st.Index, Label: st.Label(), Filter: st.Filter, Err: errors.New("filter returned malformed candidates")}
		}
		if out.Strings != strs {
			out = FromDistribution(strs, out.Distribution())
		}
		same := sameServices(cur, out)
		for i, s := range out.Services {
			var before []Cand
			if same {
				before = cur.Lists[i]
			} else if j := cur.Index(s); j >= 0 {
				before = cur.Lists[j]
			}
			if len(out.Lists[i]) == 0 {
				if len(before) > 0 {
					gone[s] = emptied{step: st.Index, label: st.Label(), last: before, from: cur}
				} else if _, known := gone[s]; !known {
					gone[s] = emptied{}
				}
			} else if len(gone) > 0 {
				delete(gone, s)
			}
		}
		if !same {
			for s := range gone {
				if out.Index(s) < 0 {
					delete(gone, s)
				}
			}
		}
		if ex != nil {
			ex.record(st.Index, st.Label(), st.Filter, cur, out)
		}
		cur = out
	}
	res := &Result{Distribution: cur.Distribution(), Explanation: ex}
	if ex != nil {
		ex.finish(cur, env, in.Previous)
	}
	var empty []EmptyService
	for _, s := range cur.Services {
		g, ok := gone[s]
		if !ok {
			continue
		}
		e := emptyService(s, g.step, g.label, g.from, g.last, ex)
		if ex != nil && g.step > 0 && (ex.only == nil || ex.only[s]) {
			ex.svc(s).EmptiedBy = fmt.Sprintf("%d (%s)", g.step, g.label)
		}
		empty = append(empty, e)
	}
	sort.Slice(empty, func(i, j int) bool { return empty[i].Service < empty[j].Service })
	return res, empty, nil
}

// finish records the final candidates (those left when a run stops).
func (e *Explanation) finish(cur *Candidates, env *Env, previous model.Distribution) {
	for i, s := range cur.Services {
		if !env.Explains(s) {
			continue
		}
		se := e.svc(s)
		se.Final = e.names(cur, cur.Lists[i])
		if prev, ok := previous[s]; ok {
			pc := make([]Cand, len(prev))
			for k, m := range prev {
				pc[k] = cur.Cand(m)
			}
			se.Previous = candNames(cur, pc)
			se.Moved = !sameSet(pc, cur.Lists[i])
		}
		if se.Initial == nil {
			se.Initial = []string{}
		}
	}
}

// sameSet reports whether two candidate lists hold the same candidates,
// ignoring order.
func sameSet(a, b []Cand) bool {
	if len(a) != len(b) {
		return false
	}
	count := make(map[Cand]int, len(a))
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		if count[x] == 0 {
			return false
		}
		count[x]--
	}
	return true
}

func emptyService(s string, step int, label string, from *Candidates, last []Cand, ex *Explanation) EmptyService {
	e := EmptyService{Service: s, StepIndex: step, Step: label}
	if from != nil {
		e.Last = candNames(from, last)
	}
	if ex != nil && step > 0 && (ex.only == nil || ex.only[s]) {
		se := ex.svc(s)
		e.Reasons = make([]string, len(e.Last))
		for k, t := range e.Last {
			for _, r := range se.Rejections {
				if r.StepIndex == step && r.Target == t {
					e.Reasons[k] = r.Reason
				}
			}
		}
	}
	return e
}

// cartesian returns every service × every target; the first n Strings
// entries are the sorted target names, and all services share one list.
// It takes services itself.
func cartesian(strs *Strings, services []string, n int) *Candidates {
	c := candidatesOf(strs, services)
	all := make([]Cand, n)
	for i := range all {
		all[i] = Cand{Target: int32(i), Container: NoContainer}
	}
	for i := range c.Lists {
		c.Lists[i] = all[:n:n]
	}
	return c
}
