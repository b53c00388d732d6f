package qos

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/internal/nixeval"
	"github.com/dydisnix/dydisnix/model"
)

// A QoS model in Nix is the original's form
//
//	{services, infrastructure, initialDistribution, previousDistribution, filters, lib}: <distribution>
//
// evaluated by bridge.nix. The filters it calls run in Go: docs/qos.md
// ("QoS models in Nix") describes the bridge.

//go:embed bridge.nix
var bridgeNix string

// NixModelOptions say how a QoS model in Nix is evaluated.
type NixModelOptions struct {
	// Nix are the evaluator options; Nix.ExtraParams reaches the model and
	// the filter catalog (the arguments of those names they declare).
	Nix model.NixOptions
	// Filters is the original's -F catalog, a .nix file evaluating to
	// {pkgs, referenceFilters}: { name = filter; ... }; "" = the reference
	// filters. The catalog replaces the reference filters, as in the
	// original.
	Filters string
	// Ctx stops the evaluations of loading and, when Input.Context is nil,
	// of the runs; nil = context.Background().
	Ctx context.Context
}

// NixModelFilter is the filter name of the step that runs a QoS model in
// Nix. Its errors name the model file: a StepError of it says nothing more.
const NixModelFilter = "qosModel"

// MaxReplayRounds bounds the evaluations of one QoS model in replay mode:
// every round adds the result of one filter call.
const MaxReplayRounds = 256

// NixModel is the step that runs a QoS model in Nix on the candidate
// distribution it is given (the initialDistribution of the model).
type NixModel struct {
	// File is the model's absolute path.
	File string
	// Name is the file as the user gave it, for messages.
	Name string
	// Opts are the evaluation options.
	Opts NixModelOptions
	// Fast permits the fast mode (the model text cannot inspect a
	// filter's result without an evaluation error; see fastEligible).
	Fast bool
	// rounds counts the evaluations of the last Apply (tests, benchmarks).
	rounds atomic.Int64
}

// nixModelFilters are the filters a QoS model may call by name (the
// original's reference filters), as registered filters.
var nixModelFilters = map[string]Spec{
	"createCartesianProduct": cartesianSpec, "mapAttrOnList": mapAttrOnListSpec,
	"mapListOnAttr": mapListOnAttrSpec, "mapAttrOnAttr": mapAttrOnAttrSpec,
	"mapStatefulToPrevious": statefulSpec, "mapBoundServicesToPrevious": boundSpec,
	"divideRoundRobin": roundRobinSpec, "order": orderSpec, "divide": divideSpec,
	"minsetcover": minSetCoverSpec, "multiwaycut": multiwayCutSpec, "graphcol": graphColSpec,
}

// qosModelArgs are the arguments of the original's QoS model function.
var qosModelArgs = []string{"services", "infrastructure", "initialDistribution", "previousDistribution", "filters", "lib"}

// probeNixModel tells a QoS model function (the original's form) from a
// .nix policy ({steps = [...]}, possibly a function whose arguments are all
// optional): a function with a required argument, with one of the QoS
// model's argument names, or with no named arguments is a QoS model.
func probeNixModel(ctx context.Context, file string, opts model.NixOptions) (bool, error) {
	bin, err := exec.LookPath(model.NixInstantiate)
	if err != nil {
		return false, fmt.Errorf("%s: cannot evaluate a Nix file: %s is not on PATH", file, model.NixInstantiate)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	expr := "let m = import " + model.QuoteNix(abs) + "; in if builtins.isFunction m then builtins.functionArgs m else null"
	args := []string{"--eval", "--read-write-mode", "--strict", "--json", "--expr", expr}
	if opts.ShowTrace {
		args = append(args, "--show-trace")
	}
	out, err := nixeval.Run(ctx, bin, args, nil)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	v, err := model.DecodeValue(out, model.FormatJSON, file)
	if err != nil {
		return false, err
	}
	formals, ok := v.(map[string]any)
	if !ok {
		return false, nil
	}
	if len(formals) == 0 {
		return true, nil
	}
	for k, optional := range formals {
		if optional == false {
			return true, nil
		}
		for _, a := range qosModelArgs {
			if k == a {
				return true, nil
			}
		}
	}
	return false, nil
}

// newNixModelPolicy returns the one-step policy that runs the QoS model file.
func newNixModelPolicy(file string, o NixModelOptions) (*Policy, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := &NixModel{File: abs, Name: file, Opts: o}
	texts := []string{}
	for _, f := range []string{abs, o.Filters} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %w", err)
		}
		texts = append(texts, string(data))
	}
	if o.Filters != "" {
		if m.Opts.Filters, err = filepath.Abs(o.Filters); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Filters, err)
		}
	}
	extra := strings.TrimSpace(o.Nix.ExtraParams)
	m.Fast = fastEligible(texts...) && (extra == "" || extra == "{}" || extra == "{ }")
	step := NewStep(filepath.Base(file), m)
	step.Filter, step.Index = NixModelFilter, 1 // not Pure: it runs nix-instantiate
	return &Policy{File: file, Steps: []*Step{step}}, nil
}

// Inspections of a value that do not fail on a function: a model (or
// catalog) whose text holds none of them cannot look inside a filter's
// result in fast mode without an evaluation error (which falls back to the
// replay mode), so its fast result is the one a real evaluation gives.
var (
	nixComment   = regexp.MustCompile(`(?s)/\*.*?\*/|#[^\n]*`)
	inspectNixRe = regexp.MustCompile(`==|!=|\?|\bor\b|\bwith\b|\bimport\b|builtins|__|tryEval|typeOf|isAttrs|isFunction|isList|hasAttr|\blib\s*\.|\(\s*lib\s*\)`)
)

// fastEligible reports whether the fast mode is safe for these Nix sources.
func fastEligible(texts ...string) bool {
	for _, t := range texts {
		if inspectNixRe.MatchString(nixComment.ReplaceAllString(t, "")) {
			return false
		}
	}
	return true
}

// Apply evaluates the model with in as its initialDistribution.
func (m *NixModel) Apply(env *Env, in *Candidates) (*Candidates, error) {
	ctx := env.Context
	if ctx == nil {
		ctx = m.Opts.Ctx
	}
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := os.MkdirTemp("", "dydisnix-qos-*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	defer os.RemoveAll(dir)
	b := &bridgeRun{model: m, env: env, in: in, dir: dir, cache: map[string]*Candidates{}, index: map[string]any{}}
	if err := b.writeInputs(); err != nil {
		return nil, err
	}
	m.rounds.Store(0)
	if m.Fast {
		node, err := b.eval(ctx, true)
		m.rounds.Add(1)
		if err == nil && pure(node) {
			return b.result(node)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, ctx.Err())
		}
		var fe *filterError
		if errors.As(err, &fe) {
			return nil, err
		}
	}
	for round := 0; round < MaxReplayRounds; round++ {
		node, err := b.eval(ctx, false)
		m.rounds.Add(1)
		if err == nil {
			return b.result(node)
		}
		var need *needError
		if !errors.As(err, &need) {
			return nil, err
		}
		if err := b.answer(need); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: the QoS model still calls new filters after %d evaluations", m.Name, MaxReplayRounds)
}

// bridgeRun is one Apply: the inputs written for Nix and the results of
// the filter calls so far.
type bridgeRun struct {
	model *NixModel
	env   *Env
	in    *Candidates
	dir   string
	token string
	cache map[string]*Candidates // key (bridge.nix) → result
	index map[string]any         // key → result file, for Nix
}

// needError is a replay round that stopped at a filter call without a
// cached result.
type needError struct {
	key string
	req any
}

func (e *needError) Error() string { return "filter call " + e.key + " not computed yet" }

// filterError is a filter that failed in Go: an error of the model's
// evaluation, never a reason to try another mode.
type filterError struct{ err error }

func (e *filterError) Error() string { return e.err.Error() }
func (e *filterError) Unwrap() error { return e.err }

func (b *bridgeRun) writeInputs() error {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("%s: %w", b.model.Name, err)
	}
	b.token = "__dydisnix_token_" + hex.EncodeToString(tok)
	inputs := map[string]any{"services": b.env.Services, "infrastructure": b.env.Infrastructure, "initial": nil, "previous": nil}
	if b.env.Services == nil {
		inputs["services"] = map[string]any{}
	}
	if b.env.Infrastructure == nil {
		inputs["infrastructure"] = map[string]any{}
	}
	if !isCartesian(b.env, b.in) {
		inputs["initial"] = sharedForm(b.in)
	}
	if b.env.Previous != nil {
		inputs["previous"] = b.env.Previous
	}
	return b.writeJSON("inputs.json", inputs)
}

func (b *bridgeRun) writeJSON(name string, v any) error {
	data, err := model.EncodeJSON(v)
	if err != nil {
		return fmt.Errorf("%s: encode %s: %w", b.model.Name, name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name), data, 0o600); err != nil {
		return fmt.Errorf("%s: %w", b.model.Name, err)
	}
	return nil
}

// isCartesian reports whether in is the cartesian product of the services
// and the targets, which bridge.nix builds itself (sharing one list).
func isCartesian(env *Env, in *Candidates) bool {
	targets := env.TargetNames()
	if len(in.Services) != len(env.Services) {
		return false
	}
	for j, t := range targets {
		if j >= in.Strings.Len() || in.Strings.Name(int32(j)) != t {
			return false
		}
	}
	for i, s := range in.Services {
		if env.Services[s] == nil || len(in.Lists[i]) != len(targets) {
			return false
		}
		for j, c := range in.Lists[i] {
			if c.Target != int32(j) || c.Container != NoContainer {
				return false
			}
		}
	}
	return true
}

// eval runs one evaluation and returns the model's result node.
func (b *bridgeRun) eval(ctx context.Context, fast bool) (any, error) {
	m := b.model
	bin, err := exec.LookPath(model.NixInstantiate)
	if err != nil {
		return nil, fmt.Errorf("%s: a QoS model in Nix needs %s on PATH", m.Name, model.NixInstantiate)
	}
	extra := strings.TrimSpace(m.Opts.Nix.ExtraParams)
	if extra == "" {
		extra = "{ }"
	}
	expr := "let lib = " + augment.Lib + "; in\n" + bridgeNix
	args := []string{"--eval", "--read-write-mode", "--strict", "--json", "--expr", expr,
		"--argstr", "qosFile", m.File,
		"--argstr", "inputsFile", filepath.Join(b.dir, "inputs.json"),
		"--argstr", "token", b.token,
		"--arg", "fast", fmt.Sprint(fast),
		"--arg", "extraParams", extra,
	}
	if m.Opts.Filters != "" {
		args = append(args, "--argstr", "filtersFile", m.Opts.Filters)
	}
	if len(b.index) > 0 {
		if err := b.writeJSON("cache.json", b.index); err != nil {
			return nil, err
		}
		args = append(args, "--argstr", "cacheFile", filepath.Join(b.dir, "cache.json"))
	}
	if m.Opts.Nix.ShowTrace {
		args = append(args, "--show-trace")
	}
	timeout := m.Opts.Nix.Timeout
	if timeout <= 0 {
		timeout = model.DefaultNixTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := nixeval.Run(tctx, bin, args, nil)
	if err != nil {
		var ee *nixeval.Error
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		case tctx.Err() != nil:
			return nil, fmt.Errorf("%s: the QoS model's evaluation did not finish within %s", m.Name, timeout)
		case errors.As(err, &ee):
			if need := needOf(ee.Stderr, m.File); need != nil {
				return nil, need
			}
			if at := b.position(tctx, bin, args, ee.Error()); at != "" {
				return nil, fmt.Errorf("%s: %w\n(%s)", m.Name, ee, at)
			}
			return nil, fmt.Errorf("%s: %w", m.Name, ee)
		}
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	v, err := model.DecodeValue(out, model.FormatJSON, m.File)
	if err != nil {
		return nil, err
	}
	top, _ := v.(map[string]any)
	if bad, ok := top["bad"].(string); ok {
		return nil, fmt.Errorf("%s: %s", m.Name, bad)
	}
	node, ok := top["result"]
	if !ok {
		return nil, fmt.Errorf("%s: internal: unexpected evaluator output", m.Name)
	}
	return node, nil
}

// nixPos is a position in a Nix error message or trace.
var nixPos = regexp.MustCompile(`at (/[^\s:]+):(\d+):(\d+)`)

// position returns "at FILE:LINE:COL" of the model or the catalog when the
// message has none (a throw): the innermost one of the evaluation's
// --show-trace, which is run for it.
func (b *bridgeRun) position(ctx context.Context, bin string, args []string, msg string) string {
	own := func(f string) bool { return f == b.model.File || (f != "" && f == b.model.Opts.Filters) }
	for _, x := range nixPos.FindAllStringSubmatch(msg, -1) {
		if own(x[1]) {
			return ""
		}
	}
	if !slices.Contains(args, "--show-trace") {
		args = append(args[:len(args):len(args)], "--show-trace")
	}
	_, err := nixeval.Run(ctx, bin, args, nil)
	var ee *nixeval.Error
	if !errors.As(err, &ee) {
		return ""
	}
	for _, x := range nixPos.FindAllStringSubmatch(ee.Stderr, -1) {
		if own(x[1]) {
			return x[0]
		}
	}
	return ""
}

const (
	needStart = "__dydisnix_need__"
	needEnd   = "__dydisnix_end__"
)

// needOf reads the request of a replay round from the evaluator's stderr.
func needOf(stderr, file string) *needError {
	i := strings.Index(stderr, needStart)
	if i < 0 {
		return nil
	}
	rest := stderr[i+len(needStart):]
	j := strings.Index(rest, needEnd)
	if j < 0 {
		return nil
	}
	key, reqText, ok := strings.Cut(rest[:j], ":")
	if !ok {
		return nil
	}
	req, err := model.DecodeValue([]byte(reqText), model.FormatJSON, file)
	if err != nil {
		return nil
	}
	return &needError{key: key, req: req}
}

// answer computes a requested call and adds it to the cache.
func (b *bridgeRun) answer(need *needError) error {
	if _, done := b.cache[need.key]; done {
		return fmt.Errorf("%s: internal: filter call %s asked for twice", b.model.Name, need.key)
	}
	res, err := b.dist(need.req)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("r%d.json", len(b.index))
	if err := b.writeJSON(name, sharedForm(res)); err != nil {
		return err
	}
	b.cache[need.key] = res
	b.index[need.key] = filepath.Join(b.dir, name)
	return nil
}

// sharedForm writes candidates for bridge.nix as {lists, of}: each
// distinct candidate list once, and for each service the index of its list.
// Services with equal lists (all those of one type after a type filter)
// then share one Nix list: Nix reads and compares far less.
func sharedForm(c *Candidates) map[string]any {
	lists := []any{}
	of := make(map[string]any, len(c.Services))
	seen := map[string]int{}
	var key []byte
	for i, s := range c.Services {
		l := c.Lists[i]
		key = key[:0]
		for _, x := range l {
			key = binary.LittleEndian.AppendUint32(key, uint32(x.Target))
			key = binary.LittleEndian.AppendUint32(key, uint32(x.Container))
		}
		j, ok := seen[string(key)]
		if !ok {
			ms := make([]any, len(l))
			for k, x := range l {
				if m := c.Mapping(x); m.Record {
					ms[k] = map[string]any{"target": m.Target, "container": m.Container}
				} else {
					ms[k] = m.Target
				}
			}
			j = len(lists)
			lists = append(lists, ms)
			seen[string(key)] = j
		}
		of[s] = j
	}
	return map[string]any{"lists": lists, "of": of}
}

// pure reports whether a fast-mode node holds no function (a filter result
// the model combined with other data, or a result that is no distribution).
func pure(v any) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if !pure(e) {
				return false
			}
		}
	case map[string]any:
		if _, f := x["__dydisnix_function"]; f && len(x) == 1 {
			return false
		}
		for _, e := range x {
			if !pure(e) {
				return false
			}
		}
	}
	return true
}

// result computes the model's result, which must be a distribution.
func (b *bridgeRun) result(node any) (*Candidates, error) {
	switch x := node.(type) {
	case map[string]any:
		if _, f := x["__dydisnix_function"]; f && len(x) == 1 {
			return nil, fmt.Errorf("%s: the QoS model returned a function, expected a distribution (an attribute set of target lists; a filter given too few arguments?)", b.model.Name)
		}
		c, err := b.dist(node)
		if err == nil && c == nil {
			err = fmt.Errorf("%s: the QoS model returned null (previousDistribution without a previous deployment?), expected a distribution", b.model.Name)
		}
		return c, err
	default:
		return nil, fmt.Errorf("%s: the QoS model returned a %s, expected a distribution (an attribute set of target lists)", b.model.Name, model.TypeName(node))
	}
}

// dist computes a distribution node: a filter call, a reference to a
// distribution Go knows, or plain data.
func (b *bridgeRun) dist(v any) (*Candidates, error) {
	m, _ := v.(map[string]any)
	if m != nil && len(m) == 1 {
		if _, f := m["__dydisnix_function"]; f {
			return nil, fmt.Errorf("%s: expected a distribution, got a function (a filter given too few arguments?)", b.model.Name)
		}
		if ref, ok := m["__dydisnix_ref"].(string); ok {
			switch {
			case ref == "initial":
				return b.in, nil
			case ref == "previous":
				if b.env.Previous == nil {
					return nil, nil
				}
				return FromDistribution(b.in.Strings, b.env.Previous), nil
			case strings.HasPrefix(ref, "cache:"):
				if c, ok := b.cache[strings.TrimPrefix(ref, "cache:")]; ok {
					return c, nil
				}
			}
			return nil, fmt.Errorf("%s: internal: unknown reference %q", b.model.Name, ref)
		}
	}
	if m != nil && len(m) == 2 {
		if name, ok := m["__dydisnix_call"].(string); ok {
			args, _ := m["args"].(map[string]any)
			return b.call(name, args)
		}
	}
	if v == nil {
		return nil, nil
	}
	d, err := model.DistributionFromValue(v, b.model.Name+" (a distribution of the QoS model)")
	if err != nil {
		return nil, err
	}
	return FromDistribution(b.in.Strings, d), nil
}

// call runs one filter call in Go.
func (b *bridgeRun) call(name string, args map[string]any) (*Candidates, error) {
	spec, ok := nixModelFilters[name]
	if !ok {
		return nil, fmt.Errorf("%s: unknown filter %s", b.model.Name, name)
	}
	fail := func(err error) (*Candidates, error) {
		return nil, &filterError{fmt.Errorf("%s: filters.%s: %w", b.model.Name, name, err)}
	}
	env := &Env{Services: b.env.Services, Infrastructure: b.env.Infrastructure, Previous: b.env.Previous, Step: b.env.Step, StepIndex: b.env.StepIndex}
	params := Params{}
	var in *Candidates
	hasDist := false
	for k, v := range args {
		mv, _ := v.(map[string]any)
		ref, _ := mv["__dydisnix_ref"].(string)
		var err error
		switch k {
		case "services":
			if ref != "services" {
				env.Services, err = model.ServicesFromValue(v, b.model.Name+" (services given to filters."+name+")")
			}
		case "infrastructure":
			if ref != "infrastructure" {
				env.Infrastructure, err = model.InfrastructureFromValue(v, b.model.Name+" (infrastructure given to filters."+name+")")
			}
		case "previousDistribution":
			var d *Candidates
			if d, err = b.dist(v); err == nil {
				env.Previous = nil
				if d != nil {
					env.Previous = d.Distribution()
				}
			}
		case "distribution":
			hasDist = true
			in, err = b.dist(v)
			if err == nil && in == nil {
				err = errors.New("distribution is null, expected a distribution")
			}
		default:
			params[k] = v
		}
		if err != nil {
			var fe *filterError
			if errors.As(err, &fe) {
				return nil, err
			}
			return fail(err)
		}
	}
	if !hasDist {
		strs := NewStrings()
		targets := env.Infrastructure.Names()
		for _, t := range targets {
			strs.Intern(t)
		}
		in = cartesian(strs, env.Services.Names(), len(targets))
	}
	f, err := spec.Build(params)
	if err != nil {
		return fail(err)
	}
	out, err := f.Apply(env, in)
	if err != nil {
		return fail(err)
	}
	return out, nil
}
