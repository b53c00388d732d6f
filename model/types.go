package model

import (
	"encoding/json"
	"fmt"
)

// Reserved service attributes that have a dedicated field in Service.
const (
	AttrName       = "name"
	AttrType       = "type"
	AttrDependsOn  = "dependsOn"
	AttrConnectsTo = "connectsTo"
	AttrPkg        = "pkg"
)

// Service is one unit of the services model in its filtered form: dependsOn
// and connectsTo hold service names, every other attribute is in Attrs.
type Service struct {
	// Name is the service name (the attribute key of the model).
	Name string
	// Type is the Disnix activation type, e.g. "process".
	Type string
	// DependsOn lists services that must be activated before this one.
	DependsOn []string
	// ConnectsTo lists services this one talks to without an ordering requirement.
	ConnectsTo []string
	// Attrs holds every other attribute (including pkg when it is a plain
	// path or string), normalised to JSON-like values.
	Attrs map[string]any
	// HasDependsOn and HasConnectsTo record whether the attribute was present,
	// so a written model keeps the original shape (absent vs. empty list).
	HasDependsOn, HasConnectsTo bool
}

// Attr returns an attribute as the Nix filters see it: name, type, dependsOn
// and connectsTo included.
func (s *Service) Attr(key string) (any, bool) {
	switch key {
	case AttrName:
		return s.Name, true
	case AttrType:
		if s.Type == "" {
			v, ok := s.Attrs[key]
			return v, ok
		}
		return s.Type, true
	case AttrDependsOn:
		if !s.HasDependsOn {
			return nil, false
		}
		return stringsToAny(s.DependsOn), true
	case AttrConnectsTo:
		if !s.HasConnectsTo {
			return nil, false
		}
		return stringsToAny(s.ConnectsTo), true
	}
	v, ok := s.Attrs[key]
	return v, ok
}

// Property returns a property as the original C tools see it: name, type,
// group, providesContainer(s), dependsOn and connectsTo are not properties.
func (s *Service) Property(key string) (any, bool) {
	switch key {
	case AttrName, AttrType, AttrDependsOn, AttrConnectsTo, "group", "providesContainer", "providesContainers":
		return nil, false
	}
	v, ok := s.Attrs[key]
	return v, ok
}

// Stateful reports whether the service declares stateful = true.
func (s *Service) Stateful() bool {
	b, _ := s.Attrs["stateful"].(bool)
	return b
}

// DeployState reports whether the service's state is managed (deployState = true).
func (s *Service) DeployState() bool {
	b, _ := s.Attrs["deployState"].(bool)
	return b
}

// Inter returns dependsOn followed by connectsTo (every inter-dependency).
func (s *Service) Inter() []string {
	out := make([]string, 0, len(s.DependsOn)+len(s.ConnectsTo))
	out = append(out, s.DependsOn...)
	return append(out, s.ConnectsTo...)
}

// MarshalJSON writes the service as one flat object, the JSON form of the
// filtered Nix services model.
func (s *Service) MarshalJSON() ([]byte, error) {
	return json.Marshal(s.ToMap())
}

// ToMap returns the service as one flat attribute set.
func (s *Service) ToMap() map[string]any {
	m := make(map[string]any, len(s.Attrs)+4)
	for k, v := range s.Attrs {
		m[k] = v
	}
	m[AttrName] = s.Name
	if s.Type != "" {
		m[AttrType] = s.Type
	}
	if s.HasDependsOn || len(s.DependsOn) > 0 {
		m[AttrDependsOn] = nonNil(s.DependsOn)
	}
	if s.HasConnectsTo || len(s.ConnectsTo) > 0 {
		m[AttrConnectsTo] = nonNil(s.ConnectsTo)
	}
	return m
}

// Services is the services model: service name → service.
type Services map[string]*Service

// Names returns the service names in byte-wise sorted order.
func (s Services) Names() []string { return sortedKeys(s) }

// Target is one machine of the infrastructure model.
type Target struct {
	// Name is the attribute key of the target in the infrastructure model.
	Name string
	// Properties holds the target's properties (hostname, mem, zone, ...).
	Properties map[string]any
	// Containers maps container name → container properties.
	Containers map[string]map[string]any
	// Extra holds every other attribute (system, clientInterface,
	// targetProperty, numOfCores, ...), normalised to JSON-like values.
	Extra map[string]any
}

// Property returns a target property.
func (t *Target) Property(key string) (any, bool) {
	v, ok := t.Properties[key]
	return v, ok
}

// TargetProperty returns the name of the property that identifies the
// machine: the target's targetProperty attribute, else def, else "hostname".
func (t *Target) TargetProperty(def string) string {
	if s, ok := t.Extra["targetProperty"].(string); ok && s != "" {
		return s
	}
	if def != "" {
		return def
	}
	return "hostname"
}

// System returns the target's system attribute, or "" when not set.
func (t *Target) System() string {
	s, _ := t.Extra["system"].(string)
	return s
}

// ToMap returns the target as the attribute set of the infrastructure model.
func (t *Target) ToMap() map[string]any {
	m := make(map[string]any, len(t.Extra)+2)
	for k, v := range t.Extra {
		m[k] = v
	}
	props := t.Properties
	if props == nil {
		props = map[string]any{}
	}
	m["properties"] = props
	if t.Containers != nil {
		m["containers"] = t.Containers
	}
	return m
}

// MarshalJSON writes the target in the infrastructure model's JSON form.
func (t *Target) MarshalJSON() ([]byte, error) { return json.Marshal(t.ToMap()) }

// Clone returns a deep copy of the target.
func (t *Target) Clone() *Target {
	c := &Target{Name: t.Name}
	c.Properties, _ = CloneValue(t.Properties).(map[string]any)
	c.Extra, _ = CloneValue(t.Extra).(map[string]any)
	if t.Containers != nil {
		c.Containers = make(map[string]map[string]any, len(t.Containers))
		for k, v := range t.Containers {
			c.Containers[k], _ = CloneValue(v).(map[string]any)
		}
	}
	return c
}

// Infrastructure is the infrastructure model: target name → target.
type Infrastructure map[string]*Target

// Names returns the target names in byte-wise sorted order.
func (i Infrastructure) Names() []string { return sortedKeys(i) }

// Clone returns a deep copy of the infrastructure.
func (i Infrastructure) Clone() Infrastructure {
	c := make(Infrastructure, len(i))
	for k, v := range i {
		c[k] = v.Clone()
	}
	return c
}

// Mapping is one element of a distribution list: a target, optionally with
// a container. Record is true when the element was written as a record
// ({ target = ...; container = ...; }) rather than as a plain target name;
// the Nix filters compare elements with ==, so records never equal names.
type Mapping struct {
	Target    string
	Container string
	Record    bool
}

// MarshalJSON writes a plain mapping as its target name and a record as an object.
func (m Mapping) MarshalJSON() ([]byte, error) {
	if !m.Record {
		return json.Marshal(m.Target)
	}
	obj := map[string]string{"target": m.Target}
	if m.Container != "" {
		obj["container"] = m.Container
	}
	return json.Marshal(obj)
}

// UnmarshalJSON reads a target name or a {"target", "container"} record.
func (m *Mapping) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*m = Mapping{Target: s}
		return nil
	}
	var rec struct {
		Target    *string `json:"target"`
		Container string  `json:"container"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("expected a target name or {\"target\": ..., \"container\": ...}: %w", err)
	}
	if rec.Target == nil {
		return fmt.Errorf("mapping record has no \"target\"")
	}
	*m = Mapping{Target: *rec.Target, Container: rec.Container, Record: true}
	return nil
}

// Distribution maps a service name to the ordered list of its mappings.
type Distribution map[string][]Mapping

// Names returns the service names in byte-wise sorted order.
func (d Distribution) Names() []string { return sortedKeys(d) }

// Targets returns the plain target names of a service, in order.
func (d Distribution) Targets(service string) []string {
	ms := d[service]
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Target)
	}
	return out
}

// Clone returns a copy of the distribution.
func (d Distribution) Clone() Distribution {
	c := make(Distribution, len(d))
	for k, v := range d {
		c[k] = append([]Mapping(nil), v...)
	}
	return c
}

func sortedKeys[V any](m map[string]V) []string { return SortedKeys(m) }

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// CloneValue deep-copies a JSON-like value.
func CloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = CloneValue(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = CloneValue(e)
		}
		return c
	default:
		return v
	}
}
