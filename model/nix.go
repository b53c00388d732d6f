package model

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dydisnix/dydisnix/internal/nixeval"
)

//go:embed eval.nix
var evalNix string

// NixInstantiate is the evaluator command used for .nix models. It must be
// on PATH (or be an absolute path).
var NixInstantiate = nixeval.Command

// NixOptions tune how .nix models are evaluated.
type NixOptions struct {
	// ExtraParams is a Nix expression for an attribute set of extra
	// arguments (like the original's --extra-params). Only the arguments a
	// model function declares are passed to it. Empty means {}.
	ExtraParams string
	// TargetProperty is the default property that identifies a machine when
	// a distribution's target attribute sets are turned back into names.
	// Empty means $DISNIX_TARGET_PROPERTY, else "hostname".
	TargetProperty string
	// Timeout bounds one evaluation; zero means DefaultNixTimeout.
	Timeout time.Duration
	// ShowTrace passes --show-trace to the evaluator.
	ShowTrace bool
}

// DefaultNixTimeout bounds one nix-instantiate run when NixOptions.Timeout is zero.
const DefaultNixTimeout = 2 * time.Minute

// evalNixModel evaluates a .nix model file with nix-instantiate and the
// default options, for the loaders without a context (LoadValue and those
// built on it): only DefaultNixTimeout bounds it. Callers that must be able
// to stop an evaluation use LoadValueContext and the other Context loaders.
func evalNixModel(file string, kind Kind, infra Infrastructure) (any, error) {
	return EvalNix(context.Background(), file, kind, infra, NixOptions{})
}

// EvalNix evaluates a .nix model file with `nix-instantiate --eval --strict
// --json` and returns its JSON-like value, after the Disnix normalisation of
// its kind:
//
//   - services: the function {distribution, invDistribution, system, pkgs, ...}
//     (or a plain attribute set) is called with empty distributions and a pkgs
//     that throws when used; pkg is kept only when it is a path (as its
//     absolute path) or a string, and is never forced beyond that check;
//     dependsOn/connectsTo attribute sets become lists of the referenced
//     services' names, in sorted key order.
//   - infrastructure and plain: the value as it is (a function whose
//     arguments are all optional is called).
//   - distribution: the function {infrastructure} is called with infra, and
//     each target attribute set is turned back into the target's name by
//     its targetProperty (dydisnix.md §1.4 b).
//
// Floats are read exactly, paths become absolute path strings and are never
// copied to the store. Errors name the file and carry nix's message.
//
// Cancelling ctx kills the evaluator with everything it started; the error
// then wraps ctx.Err().
func EvalNix(ctx context.Context, file string, kind Kind, infra Infrastructure, opts NixOptions) (any, error) {
	bin, err := exec.LookPath(NixInstantiate)
	if err != nil {
		return nil, errAt(file, "", "cannot evaluate a Nix model: %s is not on PATH (install Nix, e.g. the Debian package nix-bin, or use a .json/.yaml model)", NixInstantiate)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	tp := opts.TargetProperty
	if tp == "" {
		tp = os.Getenv("DISNIX_TARGET_PROPERTY")
	}
	if tp == "" {
		tp = "hostname"
	}
	extra := strings.TrimSpace(opts.ExtraParams)
	if extra == "" {
		extra = "{ }"
	}
	args := []string{"--eval", "--read-write-mode", "--strict", "--json", "--expr", evalNix,
		"--argstr", "file", abs,
		"--argstr", "kind", string(kind),
		"--arg", "extraParams", extra,
		"--argstr", "defaultTargetProperty", tp,
	}
	if opts.ShowTrace {
		args = append(args, "--show-trace")
	}
	if kind == KindDistribution {
		data, err := EncodeJSON(infraValue(infra))
		if err != nil {
			return nil, fmt.Errorf("%s: encode the infrastructure for the distribution: %w", file, err)
		}
		tmp, err := os.CreateTemp("", "dydisnix-infra-*.json")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		defer os.Remove(tmp.Name())
		_, werr := tmp.Write(data)
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("%s: write temporary infrastructure: %w", file, werr)
		}
		args = append(args, "--argstr", "infraFile", tmp.Name())
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultNixTimeout
	}
	stdout, err := runNix(ctx, bin, args, file, timeout)
	if err != nil && kind == KindServices && ctx.Err() == nil {
		// Inspecting pkg can hit an error tryEval cannot catch (a missing
		// file, a missing attribute of a real package set): evaluate again
		// without looking at pkg at all, dropping every pkg.
		retry := append(args[:len(args):len(args)], "--arg", "inspectPkg", "false")
		if out, rerr := runNix(ctx, bin, retry, file, timeout); rerr == nil {
			stdout, err = out, nil
		}
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(stdout))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, errAt(file, "", "cannot read the output of %s: %v", NixInstantiate, err)
	}
	var table map[string]string
	if kind == KindDistribution {
		table = targetTable(infra, tp)
	}
	var errs []error
	v := unmark(raw, file, nil, table, &errs)
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return v, nil
}

// runNix runs the evaluator in the caller's working directory, so relative
// paths in NixOptions.ExtraParams mean what the user typed.
func runNix(ctx context.Context, bin string, args []string, file string, timeout time.Duration) ([]byte, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := nixeval.Run(tctx, bin, args, nil)
	if err == nil {
		return out, nil
	}
	var ee *nixeval.Error
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s: %w", file, err)
	case tctx.Err() != nil:
		return nil, errAt(file, "", "nix evaluation did not finish within %s", timeout)
	case errors.As(err, &ee):
		return nil, errAt(file, "", "%v", ee)
	}
	return nil, errAt(file, "", "%v", err)
}

func infraValue(infra Infrastructure) any {
	if infra == nil {
		return map[string]any{}
	}
	m := make(map[string]any, len(infra))
	for k, t := range infra {
		m[k] = t.ToMap()
	}
	return m
}

// targetTable maps the canonical JSON of a target's identifying property
// value to the target's name; on duplicates the first name in sorted order
// wins, as listToAttrs does in the original.
func targetTable(infra Infrastructure, def string) map[string]string {
	table := map[string]string{}
	for _, name := range infra.Names() {
		t := infra[name]
		v, ok := t.Properties[t.TargetProperty(def)]
		if !ok {
			continue
		}
		key, err := CanonicalJSON(v)
		if err != nil {
			continue
		}
		if _, dup := table[string(key)]; !dup {
			table[string(key)] = name
		}
	}
	return table
}

// unmark decodes the markers of eval.nix, collecting errors with their place.
func unmark(v any, file string, at []string, table map[string]string, errs *[]error) any {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			x[i] = unmark(e, file, appendIndex(at, i), table, errs)
		}
		return x
	case map[string]any:
		if len(x) == 1 {
			for k, mv := range x {
				switch k {
				case "__dydisnix_float":
					n, err := decodeFloat(mv)
					if err != nil {
						*errs = append(*errs, errAt(file, placeOf(at), "%v", err))
						return nil
					}
					return n
				case "__dydisnix_nonfinite":
					*errs = append(*errs, errAt(file, placeOf(at), "a float that is infinite or not a number cannot be used in a model"))
					return nil
				case "__dydisnix_function":
					*errs = append(*errs, errAt(file, placeOf(at), "expected data, got a function (only a service's pkg may be a function)"))
					return nil
				case "__dydisnix_derivation":
					*errs = append(*errs, errAt(file, placeOf(at), "expected data, got the derivation %v (only a service's pkg may be a derivation)", mv))
					return nil
				case "__dydisnix_noname":
					*errs = append(*errs, errAt(file, placeOf(at), "expected a service with a name attribute"))
					return nil
				case "__dydisnix_target":
					name, err := resolveTarget(mv, table)
					if err != nil {
						*errs = append(*errs, errAt(file, placeOf(at), "%v", err))
						return nil
					}
					return name
				}
			}
		}
		for _, k := range SortedKeys(x) {
			x[k] = unmark(x[k], file, append(at[:len(at):len(at)], attrPath(k)), table, errs)
		}
		return x
	}
	return v
}

func appendIndex(at []string, i int) []string {
	out := append([]string(nil), at...)
	if len(out) == 0 {
		return []string{fmt.Sprintf("[%d]", i)}
	}
	out[len(out)-1] += fmt.Sprintf("[%d]", i)
	return out
}

func placeOf(at []string) string {
	return path(at...)
}

func decodeFloat(v any) (json.Number, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return "", fmt.Errorf("internal: bad float encoding %v", v)
	}
	m, err1 := strconv.ParseInt(fmt.Sprint(pair[0]), 10, 64)
	e, err2 := strconv.Atoi(fmt.Sprint(pair[1]))
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("internal: bad float encoding %v", v)
	}
	// m has at most 53 significant bits, so the conversion is exact.
	f := new(big.Float).SetInt64(m)
	f.SetMantExp(f, e)
	x, _ := f.Float64()
	if math.IsInf(x, 0) {
		return "", fmt.Errorf("internal: float encoding %v is out of range", v)
	}
	return FloatNumber(x), nil
}

// FloatNumber writes a float as a json.Number that keeps it a float: the
// shortest text that reads back to x, with ".0" added when it would read as
// an integer (1.0 stays "1.0").
func FloatNumber(x float64) json.Number {
	s := formatFloat(x)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return json.Number(s)
}

func resolveTarget(v any, table map[string]string) (string, error) {
	m, _ := v.(map[string]any)
	prop, _ := m["property"].(string)
	if present, _ := m["present"].(bool); !present {
		return "", fmt.Errorf("the target attribute set has no properties.%s, so it cannot be matched with a target of the infrastructure model", prop)
	}
	key, err := CanonicalJSON(m["value"])
	if err != nil {
		return "", err
	}
	name, ok := table[string(key)]
	if !ok {
		return "", fmt.Errorf("no target of the infrastructure model has %s = %s", prop, key)
	}
	return name, nil
}

// joinSorted joins errors sorted by message (stable, readable output).
func joinSorted(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// formatFloat writes a float the way encoding/json does: the shortest text
// that reads back to x, in exponent form only below 1e-6 or from 1e21 on.
func formatFloat(x float64) string {
	abs := math.Abs(x)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(x, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s
}
