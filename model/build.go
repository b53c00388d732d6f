package model

import (
	"fmt"
)

// Error is a model error that names the file, the place in it and what was
// expected.
type Error struct {
	File  string // the file, or "" when the model did not come from a file
	Place string // attribute path or line:column
	Msg   string
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Place != "":
		return fmt.Sprintf("%s: %s: %s", e.File, e.Place, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Place != "":
		return fmt.Sprintf("%s: %s", e.Place, e.Msg)
	}
	return e.Msg
}

func errAt(file, place, format string, args ...any) error {
	return &Error{File: file, Place: place, Msg: fmt.Sprintf(format, args...)}
}

// ServicesFromValue builds a services model from its JSON-like form (the
// filtered model of the contract). file is used in error messages; every
// problem is reported (joined, sorted), not only the first. A service
// without a name attribute gets its key as name. v is not modified.
func ServicesFromValue(v any, file string) (Services, error) {
	return servicesFromValue(v, file, false)
}

// servicesFromValue is ServicesFromValue; with own, v belongs to the caller
// alone (freshly decoded) and each service's attribute set becomes its
// Attrs instead of being copied.
func servicesFromValue(v any, file string, own bool) (Services, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errAt(file, "", "services model: expected an attribute set of services, got %s", TypeName(v))
	}
	b := newServicesBuilder(file, len(top), own)
	for key, val := range top {
		b.add(key, val)
	}
	return b.done()
}

// servicesBuilder builds a services model one service at a time (from the
// decoded model, or from the decoder as it reads each service). Its
// errors are sorted in the end: the order of the services does not matter.
type servicesBuilder struct {
	file     string
	own      bool
	out      Services
	services []Service // one allocation for every service
	errs     []error
}

func newServicesBuilder(file string, n int, own bool) *servicesBuilder {
	return &servicesBuilder{file: file, own: own, out: make(Services, n), services: make([]Service, 0, n)}
}

// add builds service key from its JSON-like value.
func (b *servicesBuilder) add(key string, val any) {
	raw, ok := val.(map[string]any)
	if !ok {
		b.errs = append(b.errs, errAt(b.file, attrPath(key), "expected a service attribute set, got %s", TypeName(val)))
		return
	}
	if len(b.services) == cap(b.services) {
		b.services = make([]Service, 0, 64)
	}
	b.services = append(b.services, Service{Name: key})
	s := &b.services[len(b.services)-1]
	// The reserved attributes get their fields; every other attribute is
	// in Attrs (the decoded set itself when it is ours).
	if b.own {
		s.Attrs = raw
	} else {
		s.Attrs = make(map[string]any, len(raw))
		for attr, val := range raw {
			s.Attrs[attr] = val
		}
	}
	if val, ok := raw[AttrName]; ok {
		if name, ok := val.(string); ok {
			s.Name = name
		} else {
			b.errs = append(b.errs, errAt(b.file, attrPath(key, AttrName), "expected a string, got %s", TypeName(val)))
		}
		delete(s.Attrs, AttrName)
	}
	if val, ok := raw[AttrType]; ok {
		if t, ok := val.(string); ok {
			s.Type = t
		} else {
			b.errs = append(b.errs, errAt(b.file, attrPath(key, AttrType), "expected a string, got %s", TypeName(val)))
		}
		delete(s.Attrs, AttrType)
	}
	for _, attr := range [2]string{AttrDependsOn, AttrConnectsTo} {
		val, ok := raw[attr]
		if !ok {
			continue
		}
		delete(s.Attrs, attr)
		names, err := nameList(val)
		switch {
		case err != nil:
			b.errs = append(b.errs, errAt(b.file, attrPath(key, attr), "%v", err))
		case attr == AttrDependsOn:
			s.DependsOn, s.HasDependsOn = names, true
		default:
			s.ConnectsTo, s.HasConnectsTo = names, true
		}
	}
	b.out[key] = s
}

func (b *servicesBuilder) done() (Services, error) {
	if len(b.errs) > 0 {
		return nil, joinSorted(b.errs)
	}
	return b.out, nil
}

// nameList reads a dependsOn/connectsTo value: a list of names, or an
// attribute set whose values are names or services with a name (sorted by key).
func nameList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return []string{}, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			n, err := depName(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, n)
		}
		return out, nil
	case map[string]any:
		out := make([]string, 0, len(x))
		for _, k := range SortedKeys(x) {
			n, err := depName(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected a list of service names, got %s", TypeName(v))
}

func depName(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		if n, ok := x[AttrName].(string); ok {
			return n, nil
		}
		return "", fmt.Errorf("expected a service with a string name")
	}
	return "", fmt.Errorf("expected a service name, got %s", TypeName(v))
}

// InfrastructureFromValue builds an infrastructure model from its JSON-like
// form. Every problem is reported (joined, sorted).
func InfrastructureFromValue(v any, file string) (Infrastructure, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errAt(file, "", "infrastructure model: expected an attribute set of targets, got %s", TypeName(v))
	}
	var errs []error
	out := make(Infrastructure, len(top))
	for name, val := range top { // errors are sorted in the end
		t, err := TargetFromValue(name, val, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[name] = t
	}
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return out, nil
}

// TargetFromValue builds one target from its JSON-like attribute set.
func TargetFromValue(name string, v any, file string) (*Target, error) {
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, errAt(file, attrPath(name), "expected a target attribute set, got %s", TypeName(v))
	}
	var errs []error
	t := &Target{Name: name, Properties: map[string]any{}, Extra: map[string]any{}}
	for attr, val := range raw { // errors are sorted in the end
		switch attr {
		case "properties":
			props, ok := val.(map[string]any)
			if !ok && val != nil {
				errs = append(errs, errAt(file, attrPath(name, attr), "expected an attribute set of properties, got %s", TypeName(val)))
				continue
			}
			if props != nil {
				t.Properties = props
			}
		case "containers":
			cs, ok := val.(map[string]any)
			if !ok && val != nil {
				errs = append(errs, errAt(file, attrPath(name, attr), "expected an attribute set of containers, got %s", TypeName(val)))
				continue
			}
			t.Containers = make(map[string]map[string]any, len(cs))
			for _, c := range SortedKeys(cs) {
				props, ok := cs[c].(map[string]any)
				if !ok && cs[c] != nil {
					errs = append(errs, errAt(file, attrPath(name, attr, c), "expected an attribute set of container properties, got %s", TypeName(cs[c])))
					continue
				}
				if props == nil {
					props = map[string]any{}
				}
				t.Containers[c] = props
			}
		default:
			t.Extra[attr] = val
		}
	}
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return t, nil
}

// DistributionFromValue builds a distribution from its JSON-like form:
// service → list of target names or {target, container} records. The Disnix
// form service → {targets = [...]} is accepted too. Every problem is
// reported (joined, sorted).
func DistributionFromValue(v any, file string) (Distribution, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errAt(file, "", "distribution model: expected an attribute set of services, got %s", TypeName(v))
	}
	var errs []error
	out := make(Distribution, len(top))
	for svc, val := range top { // errors are sorted in the end
		place := attrPath(svc)
		if obj, ok := val.(map[string]any); ok {
			t, has := obj["targets"]
			if !has {
				errs = append(errs, errAt(file, place, "expected a list of targets or an attribute set with \"targets\""))
				continue
			}
			val, place = t, attrPath(svc, "targets")
		}
		list, ok := val.([]any)
		if !ok {
			errs = append(errs, errAt(file, place, "expected a list of targets, got %s", TypeName(val)))
			continue
		}
		ms := make([]Mapping, 0, len(list))
		for i, e := range list {
			m, err := mappingFromValue(e)
			if err != nil {
				errs = append(errs, errAt(file, fmt.Sprintf("%s[%d]", place, i), "%v", err))
				continue
			}
			ms = append(ms, m)
		}
		out[svc] = ms
	}
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return out, nil
}

func mappingFromValue(v any) (Mapping, error) {
	switch x := v.(type) {
	case string:
		return Mapping{Target: x}, nil
	case map[string]any:
		t, ok := x["target"].(string)
		if !ok {
			return Mapping{}, fmt.Errorf("expected a record with a string \"target\", got %s", TypeName(x["target"]))
		}
		m := Mapping{Target: t, Record: true}
		if c, has := x["container"]; has {
			cs, ok := c.(string)
			if !ok {
				return Mapping{}, fmt.Errorf("expected a string \"container\", got %s", TypeName(c))
			}
			m.Container = cs
		}
		return m, nil
	}
	return Mapping{}, fmt.Errorf("expected a target name or a {target, container} record, got %s", TypeName(v))
}
