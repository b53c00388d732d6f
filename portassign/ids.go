package portassign

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// The scopes of an ID resource.
const (
	// ScopeGlobal makes an ID unique among all services of the system.
	ScopeGlobal = "global"
	// ScopeMachine makes an ID unique among the services of one target.
	ScopeMachine = "machine"
)

// DefaultIDServiceProperty is the service property that lists the resources
// a service needs IDs for (the reference's code and tests spell it
// requiresUniqueIdsFor; its help text says requireUniqueIdsFor).
const DefaultIDServiceProperty = "requiresUniqueIdsFor"

// Resource is one ID resource of the ID resources model.
type Resource struct {
	// Name is the resource name (the attribute key), e.g. "ports".
	Name string
	// Min and Max bound the IDs, inclusive.
	Min, Max int64
	// Scope is "global" or "machine" (other values fail at assignment).
	Scope string
	// Step is the search increment (at least 1).
	Step int64
}

// Resources is the ID resources model: resource name → resource.
type Resources map[string]Resource

// IDs is the ids file: the input (--ids) and output of the ID assigner.
type IDs struct {
	// IDs maps resource → service → ID.
	IDs map[string]map[string]int64
	// LastAssignments maps resource → last ID handed out (global scope).
	LastAssignments map[string]int64
	// LastAssignmentsPerTarget maps target → resource → last ID handed out
	// (machine scope).
	LastAssignmentsPerTarget map[string]map[string]int64
}

// NewIDs returns an empty ids file.
func NewIDs() *IDs {
	return &IDs{
		IDs:                      map[string]map[string]int64{},
		LastAssignments:          map[string]int64{},
		LastAssignmentsPerTarget: map[string]map[string]int64{},
	}
}

// Clone returns a deep copy.
func (x *IDs) Clone() *IDs {
	c := NewIDs()
	if x == nil {
		return c
	}
	for r, t := range x.IDs {
		c.IDs[r] = cloneInts(t)
	}
	c.LastAssignments = cloneInts(x.LastAssignments)
	for t, m := range x.LastAssignmentsPerTarget {
		c.LastAssignmentsPerTarget[t] = cloneInts(m)
	}
	return c
}

func cloneInts(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Value returns the JSON form of the ids file: "ids" always,
// "lastAssignments" and "lastAssignmentsPerTarget" only when non-empty.
func (x *IDs) Value() map[string]any {
	ids := map[string]any{}
	for r, t := range x.IDs {
		ids[r] = intsValue(t)
	}
	out := map[string]any{"ids": ids}
	if len(x.LastAssignments) > 0 {
		out["lastAssignments"] = intsValue(x.LastAssignments)
	}
	if len(x.LastAssignmentsPerTarget) > 0 {
		per := map[string]any{}
		for t, m := range x.LastAssignmentsPerTarget {
			per[t] = intsValue(m)
		}
		out["lastAssignmentsPerTarget"] = per
	}
	return out
}

func intsValue(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = json.Number(strconv.FormatInt(v, 10))
	}
	return out
}

// JSON returns the JSON form of the ids file, indented, with a final newline.
func (x *IDs) JSON() []byte {
	b, _ := json.MarshalIndent(x.Value(), "", "  ")
	return append(b, '\n')
}

// Nix returns the ids file in the exact layout of the reference's ids.nix
// (dydisnix.md §1.9): quoted keys, two-space indentation, every level
// sorted, empty optional sections left out, no trailing newline.
func (x *IDs) Nix() []byte {
	var w attrWriter
	w.b.WriteString("{\n")
	w.open(1, "ids")
	for _, r := range model.SortedKeys(x.IDs) {
		w.intTable(2, r, x.IDs[r])
	}
	w.close(1)
	if len(x.LastAssignments) > 0 {
		w.intTable(1, "lastAssignments", x.LastAssignments)
	}
	if len(x.LastAssignmentsPerTarget) > 0 {
		w.open(1, "lastAssignmentsPerTarget")
		for _, t := range model.SortedKeys(x.LastAssignmentsPerTarget) {
			w.intTable(2, t, x.LastAssignmentsPerTarget[t])
		}
		w.close(1)
	}
	w.b.WriteString("}")
	return []byte(w.b.String())
}

// ParseResources builds the ID resources model from its JSON-like value.
// A missing or empty min/max is 0, a missing or empty scope is "global", a
// missing or zero step is 1. file names the source in error messages.
func ParseResources(v any, file string) (Resources, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fileErr(file, "", "ID resources: expected an attribute set of resources, got %s", model.TypeName(v))
	}
	out := make(Resources, len(top))
	for _, name := range model.SortedKeys(top) {
		attrs, ok := top[name].(map[string]any)
		if !ok {
			return nil, fileErr(file, name, "expected a resource attribute set {min, max, scope, step}, got %s", model.TypeName(top[name]))
		}
		r := Resource{Name: name, Scope: ScopeGlobal, Step: 1}
		for _, k := range model.SortedKeys(attrs) {
			val := attrs[k]
			place := name + "." + k
			switch k {
			case "min", "max", "step":
				n, err := intOf(val, true)
				if err != nil {
					return nil, fileErr(file, place, "%v", err)
				}
				if n < 0 && k != "step" {
					// Ports, UIDs and GIDs are never negative.
					return nil, fileErr(file, place, "expected a number of at least 0, got %d", n)
				}
				switch k {
				case "min":
					r.Min = n
				case "max":
					r.Max = n
				case "step":
					if n < 0 {
						return nil, fileErr(file, place, "expected a step of at least 1, got %d", n)
					}
					if n > 0 {
						r.Step = n
					}
				}
			case "scope":
				switch s := val.(type) {
				case nil:
				case string:
					if s != "" {
						r.Scope = s
					}
				default:
					return nil, fileErr(file, place, "expected \"global\" or \"machine\", got %s", model.TypeName(val))
				}
			default:
				return nil, fileErr(file, place, "unknown resource attribute %q: expected min, max, scope or step", k)
			}
		}
		if r.Min > r.Max {
			return nil, fileErr(file, name, "min %d is greater than max %d", r.Min, r.Max)
		}
		out[name] = r
	}
	return out, nil
}

// intOf reads an integer: a JSON integer, or (emptyZero) null/"" as 0, or
// a string holding an integer (the reference reads every value as text).
func intOf(v any, emptyZero bool) (int64, error) {
	switch x := v.(type) {
	case nil:
		if emptyZero {
			return 0, nil
		}
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("expected an integer, got %s", string(x))
		}
		return n, nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" && emptyZero {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("expected an integer, got the string %q", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("expected an integer, got %s", model.TypeName(v))
}

// ParseIDs builds an ids file from its JSON-like value. Every section is
// optional; file names the source in error messages.
func ParseIDs(v any, file string) (*IDs, error) {
	out := NewIDs()
	if v == nil {
		return out, nil
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fileErr(file, "", "ids file: expected an attribute set {ids, lastAssignments, lastAssignmentsPerTarget}, got %s", model.TypeName(v))
	}
	for _, k := range model.SortedKeys(top) {
		val := top[k]
		switch k {
		case "ids":
			tables, err := attrsOf(val, file, "ids", "an attribute set of resources")
			if err != nil {
				return nil, err
			}
			for _, r := range model.SortedKeys(tables) {
				t, err := intTable(tables[r], file, "ids."+r)
				if err != nil {
					return nil, err
				}
				out.IDs[r] = t
			}
		case "lastAssignments":
			t, err := intTable(val, file, k)
			if err != nil {
				return nil, err
			}
			out.LastAssignments = t
		case "lastAssignmentsPerTarget":
			targets, err := attrsOf(val, file, k, "an attribute set of targets")
			if err != nil {
				return nil, err
			}
			for _, t := range model.SortedKeys(targets) {
				m, err := intTable(targets[t], file, k+"."+t)
				if err != nil {
					return nil, err
				}
				out.LastAssignmentsPerTarget[t] = m
			}
		default:
			return nil, fileErr(file, k, "unknown section: expected ids, lastAssignments or lastAssignmentsPerTarget")
		}
	}
	return out, nil
}

func attrsOf(v any, file, place, what string) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fileErr(file, place, "expected %s, got %s", what, model.TypeName(v))
	}
	return m, nil
}

func intTable(v any, file, place string) (map[string]int64, error) {
	m, err := attrsOf(v, file, place, "an attribute set of integers")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(m))
	for _, k := range model.SortedKeys(m) {
		n, err := intOf(m[k], false)
		if err != nil {
			return nil, fileErr(file, place+"."+k, "%v", err)
		}
		out[k] = n
	}
	return out, nil
}

// fileErr builds a model error naming the file and the attribute path.
func fileErr(file, place, format string, args ...any) error {
	return &model.Error{File: file, Place: place, Msg: fmt.Sprintf(format, args...)}
}
