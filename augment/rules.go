package augment

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// RuleSet is a loaded rule file: its rules, applied in order, each to every
// target it matches (targets in sorted order). Every value is resolved.
type RuleSet struct {
	// File is the rule file, for messages.
	File string
	// Rules are applied in file order; a rule sees the result of the
	// rules before it.
	Rules []Rule
}

// Rule matches targets and changes them: first Remove, then Set, then Merge.
type Rule struct {
	// Name labels the rule in messages ("rules[i]" when not given).
	Name string
	// Match selects the targets; the zero Match selects every target.
	Match Match
	// Set replaces the named properties, container properties and attributes.
	Set Patch
	// Merge deep-merges into them (attribute sets merged recursively,
	// anything else replaced), like lib.recursiveUpdate.
	Merge Patch
	// Remove deletes properties, containers and container properties.
	Remove Removal
}

// Match selects targets. All of its conditions must hold.
type Match struct {
	// Targets are globs (path.Match syntax) on the target name; one must
	// match. Empty: any target.
	Targets []string
	// Exclude are globs on the target name; none may match.
	Exclude []string
	// Containers must all be present on the target.
	Containers []string
	// Properties are conditions on target properties, sorted by key.
	Properties []Condition
}

// Condition is a test of one target property.
type Condition struct {
	// Key is the property name.
	Key string
	// Op is one of "equals", "exists", "in", "glob", "contains", "not".
	Op string
	// Value is the operand: the value for equals/not/contains, the glob
	// for glob, true/false for exists, a list for in.
	Value any
}

// Patch is a set of changes to a target.
type Patch struct {
	// Properties maps property name → value.
	Properties map[string]any
	// Containers maps container name → property name → value.
	Containers map[string]map[string]any
	// Attributes maps other target attributes (system, clientInterface,
	// targetProperty, ...) → value.
	Attributes map[string]any
}

func (p Patch) empty() bool {
	return len(p.Properties) == 0 && len(p.Containers) == 0 && len(p.Attributes) == 0
}

// Removal names what a rule deletes from a target.
type Removal struct {
	Properties          []string
	Containers          []string
	ContainerProperties map[string][]string
	Attributes          []string
}

var conditionOps = []string{"contains", "equals", "exists", "glob", "in", "not"}

// ParseRules reads a rule file's bytes (JSON or YAML) and resolves its
// values through opts (environment variables, files relative to the rule
// file's directory).
func ParseRules(data []byte, format model.Format, file string, opts Options) (*RuleSet, error) {
	opts = opts.withDefaults()
	v, err := model.DecodeValue(data, format, file)
	if err != nil {
		return nil, fmt.Errorf("load augmentation: %w", err)
	}
	p := &parser{file: file, dir: filepath.Dir(file), opts: opts}
	return p.ruleSet(v)
}

type parser struct {
	file string
	dir  string
	opts Options
}

func (p *parser) errf(place, format string, args ...any) error {
	return &model.Error{File: p.file, Place: place, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) ruleSet(v any) (*RuleSet, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, p.errf("", "expected an attribute set {rules: [...]}, got %s", model.TypeName(v))
	}
	if err := p.known(top, "", "rules", "version"); err != nil {
		return nil, err
	}
	if ver, ok := top["version"]; ok {
		if n, isNum := ver.(json.Number); !isNum || string(n) != "1" {
			return nil, p.errf("version", "unsupported rule file version: expected 1")
		}
	}
	list, ok := top["rules"].([]any)
	if !ok {
		if top["rules"] == nil {
			return nil, p.errf("rules", "missing: expected a list of rules")
		}
		return nil, p.errf("rules", "expected a list of rules, got %s", model.TypeName(top["rules"]))
	}
	rs := &RuleSet{File: p.file}
	for i, e := range list {
		r, err := p.rule(e, fmt.Sprintf("rules[%d]", i))
		if err != nil {
			return nil, err
		}
		rs.Rules = append(rs.Rules, r)
	}
	return rs, nil
}

// known reports the first key of m that is not in valid.
func (p *parser) known(m map[string]any, place string, valid ...string) error {
	for _, k := range model.SortedKeys(m) {
		found := false
		for _, v := range valid {
			if k == v {
				found = true
			}
		}
		if !found {
			return p.errf(join(place, k), "unknown attribute: expected one of %s", strings.Join(valid, ", "))
		}
	}
	return nil
}

func join(place, k string) string {
	if place == "" {
		return k
	}
	return place + "." + k
}

func (p *parser) rule(v any, place string) (Rule, error) {
	var r Rule
	m, ok := v.(map[string]any)
	if !ok {
		return r, p.errf(place, "expected a rule {name, match, set, merge, remove}, got %s", model.TypeName(v))
	}
	if err := p.known(m, place, "match", "merge", "name", "remove", "set"); err != nil {
		return r, err
	}
	r.Name = place
	if n, ok := m["name"]; ok {
		s, isStr := n.(string)
		if !isStr {
			return r, p.errf(join(place, "name"), "expected a string, got %s", model.TypeName(n))
		}
		r.Name = s
	}
	var err error
	if r.Match, err = p.match(m["match"], join(place, "match")); err != nil {
		return r, err
	}
	if r.Set, err = p.patch(m["set"], join(place, "set")); err != nil {
		return r, err
	}
	if r.Merge, err = p.patch(m["merge"], join(place, "merge")); err != nil {
		return r, err
	}
	if r.Remove, err = p.removal(m["remove"], join(place, "remove")); err != nil {
		return r, err
	}
	if r.Set.empty() && r.Merge.empty() && len(r.Remove.Properties)+len(r.Remove.Containers)+len(r.Remove.ContainerProperties)+len(r.Remove.Attributes) == 0 {
		return r, p.errf(place, "rule changes nothing: expected set, merge or remove")
	}
	return r, nil
}

// strings reads a string or a list of strings.
func (p *parser) strs(v any, place string) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, p.errf(fmt.Sprintf("%s[%d]", place, i), "expected a string, got %s", model.TypeName(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, p.errf(place, "expected a string or a list of strings, got %s", model.TypeName(v))
}

func (p *parser) globs(v any, place string) ([]string, error) {
	gs, err := p.strs(v, place)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if _, err := path.Match(g, ""); err != nil {
			return nil, p.errf(place, "invalid glob %q: %v", g, err)
		}
	}
	return gs, nil
}

func (p *parser) match(v any, place string) (Match, error) {
	var mt Match
	if v == nil {
		return mt, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return mt, p.errf(place, "expected an attribute set {targets, exclude, containers, properties}, got %s", model.TypeName(v))
	}
	if err := p.known(m, place, "container", "containers", "exclude", "properties", "property", "target", "targets"); err != nil {
		return mt, err
	}
	var err error
	for _, k := range []string{"target", "targets"} {
		gs, err := p.globs(m[k], join(place, k))
		if err != nil {
			return mt, err
		}
		mt.Targets = append(mt.Targets, gs...)
	}
	if mt.Exclude, err = p.globs(m["exclude"], join(place, "exclude")); err != nil {
		return mt, err
	}
	for _, k := range []string{"container", "containers"} {
		cs, err := p.strs(m[k], join(place, k))
		if err != nil {
			return mt, err
		}
		mt.Containers = append(mt.Containers, cs...)
	}
	for _, k := range []string{"property", "properties"} {
		if m[k] == nil {
			continue
		}
		props, ok := m[k].(map[string]any)
		if !ok {
			return mt, p.errf(join(place, k), "expected an attribute set of property conditions, got %s", model.TypeName(m[k]))
		}
		for _, key := range model.SortedKeys(props) {
			c, err := p.condition(key, props[key], join(join(place, k), key))
			if err != nil {
				return mt, err
			}
			mt.Properties = append(mt.Properties, c)
		}
	}
	return mt, nil
}

func (p *parser) condition(key string, v any, place string) (Condition, error) {
	m, isMap := v.(map[string]any)
	if !isMap {
		return Condition{Key: key, Op: "equals", Value: v}, nil
	}
	ops := 0
	for k := range m {
		for _, op := range conditionOps {
			if k == op {
				ops++
			}
		}
	}
	if ops == 0 {
		return Condition{Key: key, Op: "equals", Value: v}, nil
	}
	if len(m) != 1 {
		return Condition{}, p.errf(place, "expected exactly one operator (%s)", strings.Join(conditionOps, ", "))
	}
	for op, val := range m {
		c := Condition{Key: key, Op: op, Value: val}
		switch op {
		case "exists":
			if _, ok := val.(bool); !ok {
				return c, p.errf(join(place, op), "expected true or false, got %s", model.TypeName(val))
			}
		case "in":
			if _, ok := val.([]any); !ok {
				return c, p.errf(join(place, op), "expected a list of values, got %s", model.TypeName(val))
			}
		case "glob":
			g, ok := val.(string)
			if !ok {
				return c, p.errf(join(place, op), "expected a glob string, got %s", model.TypeName(val))
			}
			if _, err := path.Match(g, ""); err != nil {
				return c, p.errf(join(place, op), "invalid glob %q: %v", g, err)
			}
		}
		return c, nil
	}
	return Condition{}, nil
}

func (p *parser) patch(v any, place string) (Patch, error) {
	var pt Patch
	if v == nil {
		return pt, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return pt, p.errf(place, "expected an attribute set {properties, containers, attributes}, got %s", model.TypeName(v))
	}
	if err := p.known(m, place, "attributes", "containers", "properties"); err != nil {
		return pt, err
	}
	var err error
	if pt.Properties, err = p.values(m["properties"], join(place, "properties")); err != nil {
		return pt, err
	}
	if pt.Attributes, err = p.values(m["attributes"], join(place, "attributes")); err != nil {
		return pt, err
	}
	for _, k := range []string{"properties", "containers", "name"} {
		if _, bad := pt.Attributes[k]; bad {
			return pt, p.errf(join(join(place, "attributes"), k), "%s is not an attribute: use the properties or containers section", k)
		}
	}
	if m["containers"] != nil {
		cs, ok := m["containers"].(map[string]any)
		if !ok {
			return pt, p.errf(join(place, "containers"), "expected an attribute set of containers, got %s", model.TypeName(m["containers"]))
		}
		pt.Containers = map[string]map[string]any{}
		for _, c := range model.SortedKeys(cs) {
			vals, err := p.values(cs[c], join(join(place, "containers"), c))
			if err != nil {
				return pt, err
			}
			if vals == nil {
				vals = map[string]any{}
			}
			pt.Containers[c] = vals
		}
	}
	return pt, nil
}

// values reads an attribute set whose values may be sources.
func (p *parser) values(v any, place string) (map[string]any, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, p.errf(place, "expected an attribute set, got %s", model.TypeName(v))
	}
	out := make(map[string]any, len(m))
	for _, k := range model.SortedKeys(m) {
		r, err := p.resolve(m[k], join(place, k))
		if err != nil {
			return nil, err
		}
		out[k] = r
	}
	return out, nil
}

// resolve turns a value into its final form: {$env: NAME}, {$file: PATH}
// and {$value: literal} are sources; attribute sets and lists are resolved
// recursively.
func (p *parser) resolve(v any, place string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		isSource := false
		for k := range x {
			if strings.HasPrefix(k, "$") {
				isSource = true
			}
		}
		if isSource {
			return p.source(x, place)
		}
		out := make(map[string]any, len(x))
		for _, k := range model.SortedKeys(x) {
			r, err := p.resolve(x[k], join(place, k))
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := p.resolve(e, fmt.Sprintf("%s[%d]", place, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// source resolves {$env: NAME [, $default: V] [, $as: T]},
// {$file: PATH [, $as: T]} or {$value: LITERAL}, each with an optional
// $secret: true that registers the value as secret (model.AddSecret: it is
// redacted in every output). Messages name the variable or file, never the
// value.
func (p *parser) source(m map[string]any, place string) (any, error) {
	if err := p.known(m, place, "$as", "$default", "$env", "$file", "$secret", "$value"); err != nil {
		return nil, err
	}
	if sec, ok := m["$secret"]; ok {
		b, isBool := sec.(bool)
		if !isBool {
			return nil, p.errf(join(place, "$secret"), "expected true or false")
		}
		rest := make(map[string]any, len(m)-1)
		for k, v := range m {
			if k != "$secret" {
				rest[k] = v
			}
		}
		v, err := p.source(rest, place)
		if err == nil && b {
			model.AddSecret(v) // never shown: see model.Redact
		}
		return v, err
	}
	n := 0
	for _, k := range []string{"$env", "$file", "$value"} {
		if _, ok := m[k]; ok {
			n++
		}
	}
	if n != 1 {
		return nil, p.errf(place, "expected exactly one of $env, $file or $value")
	}
	if lit, ok := m["$value"]; ok {
		if len(m) != 1 {
			return nil, p.errf(place, "$value takes no other $ attributes")
		}
		return model.CloneValue(lit), nil
	}
	as := "string"
	if a, ok := m["$as"]; ok {
		s, isStr := a.(string)
		if !isStr || (s != "string" && s != "int" && s != "bool" && s != "json") {
			return nil, p.errf(join(place, "$as"), "expected string, int, bool or json")
		}
		as = s
	}
	var text, what string
	if name, ok := m["$env"]; ok {
		s, isStr := name.(string)
		if !isStr || s == "" {
			return nil, p.errf(join(place, "$env"), "expected an environment variable name")
		}
		what = "environment variable " + s
		val, found := p.opts.LookupEnv(s)
		if !found {
			def, hasDef := m["$default"]
			if !hasDef {
				return nil, p.errf(place, "%s is not set (give $default to make it optional)", what)
			}
			return model.CloneValue(def), nil
		}
		text = val
	} else {
		if _, ok := m["$default"]; ok {
			return nil, p.errf(join(place, "$default"), "$default only applies to $env")
		}
		f, isStr := m["$file"].(string)
		if !isStr || f == "" {
			return nil, p.errf(join(place, "$file"), "expected a file path")
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(p.dir, f)
		}
		what = "file " + f
		data, err := p.opts.ReadFile(f)
		if err != nil {
			return nil, p.errf(place, "read secret %s: %v", f, err)
		}
		text = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	}
	switch as {
	case "int":
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return nil, p.errf(place, "%s does not hold an integer", what)
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return nil, p.errf(place, "%s does not hold true or false", what)
		}
		return b, nil
	case "json":
		v, err := model.DecodeValue([]byte(text), model.FormatJSON, "")
		if err != nil {
			return nil, p.errf(place, "%s does not hold valid JSON", what)
		}
		return v, nil
	}
	return text, nil
}

func (p *parser) removal(v any, place string) (Removal, error) {
	var r Removal
	if v == nil {
		return r, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return r, p.errf(place, "expected an attribute set {properties, containers, containerProperties, attributes}, got %s", model.TypeName(v))
	}
	if err := p.known(m, place, "attributes", "containerProperties", "containers", "properties"); err != nil {
		return r, err
	}
	var err error
	if r.Properties, err = p.strs(m["properties"], join(place, "properties")); err != nil {
		return r, err
	}
	if r.Containers, err = p.strs(m["containers"], join(place, "containers")); err != nil {
		return r, err
	}
	if r.Attributes, err = p.strs(m["attributes"], join(place, "attributes")); err != nil {
		return r, err
	}
	if m["containerProperties"] != nil {
		cp, ok := m["containerProperties"].(map[string]any)
		if !ok {
			return r, p.errf(join(place, "containerProperties"), "expected an attribute set container → property names, got %s", model.TypeName(m["containerProperties"]))
		}
		r.ContainerProperties = map[string][]string{}
		for _, c := range model.SortedKeys(cp) {
			if r.ContainerProperties[c], err = p.strs(cp[c], join(join(place, "containerProperties"), c)); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// Apply returns the augmented infrastructure; infra is not modified. Rules
// do no I/O, so ctx is not consulted.
func (rs *RuleSet) Apply(_ context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	out := infra.Clone()
	for _, name := range out.Names() {
		t := out[name]
		for _, r := range rs.Rules {
			if r.Match.Matches(t) {
				r.apply(t)
			}
		}
	}
	model.AddSecretsOf(out)
	return out, nil
}

// Matches reports whether the target satisfies every condition.
func (m Match) Matches(t *model.Target) bool {
	if len(m.Targets) > 0 && !anyGlob(m.Targets, t.Name) {
		return false
	}
	if anyGlob(m.Exclude, t.Name) {
		return false
	}
	for _, c := range m.Containers {
		if _, ok := t.Containers[c]; !ok {
			return false
		}
	}
	for _, c := range m.Properties {
		if !c.holds(t) {
			return false
		}
	}
	return true
}

func anyGlob(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

func (c Condition) holds(t *model.Target) bool {
	v, ok := t.Properties[c.Key]
	switch c.Op {
	case "exists":
		return ok == c.Value.(bool)
	case "equals":
		return ok && same(v, c.Value)
	case "not":
		return !ok || !same(v, c.Value)
	case "in":
		if !ok {
			return false
		}
		for _, e := range c.Value.([]any) {
			if same(v, e) {
				return true
			}
		}
		return false
	case "glob":
		s, isScalar := model.ScalarText(v)
		if !ok || !isScalar {
			return false
		}
		m, _ := path.Match(c.Value.(string), s)
		return m
	case "contains":
		list, isList := v.([]any)
		if !ok || !isList {
			return false
		}
		for _, e := range list {
			if same(e, c.Value) {
				return true
			}
		}
		return false
	}
	return false
}

// same compares values, treating scalars by their text as well (mDNS
// carries every property as a string, so "2" equals 2).
func same(a, b any) bool {
	if model.Equal(a, b) {
		return true
	}
	sa, okA := model.ScalarText(a)
	sb, okB := model.ScalarText(b)
	return okA && okB && sa == sb
}

func (r Rule) apply(t *model.Target) {
	for _, k := range r.Remove.Properties {
		delete(t.Properties, k)
	}
	for _, c := range r.Remove.Containers {
		delete(t.Containers, c)
	}
	for _, c := range model.SortedKeys(r.Remove.ContainerProperties) {
		for _, k := range r.Remove.ContainerProperties[c] {
			delete(t.Containers[c], k)
		}
	}
	for _, k := range r.Remove.Attributes {
		delete(t.Extra, k)
	}
	r.Set.apply(t, func(m map[string]any, k string, v any) { m[k] = model.CloneValue(v) })
	r.Merge.apply(t, func(m map[string]any, k string, v any) { m[k] = merge(m[k], v) })
}

func (p Patch) apply(t *model.Target, put func(m map[string]any, k string, v any)) {
	if len(p.Properties) > 0 && t.Properties == nil {
		t.Properties = map[string]any{}
	}
	for _, k := range model.SortedKeys(p.Properties) {
		put(t.Properties, k, p.Properties[k])
	}
	if len(p.Attributes) > 0 && t.Extra == nil {
		t.Extra = map[string]any{}
	}
	for _, k := range model.SortedKeys(p.Attributes) {
		put(t.Extra, k, p.Attributes[k])
	}
	if len(p.Containers) > 0 && t.Containers == nil {
		t.Containers = map[string]map[string]any{}
	}
	for _, c := range model.SortedKeys(p.Containers) {
		if t.Containers[c] == nil {
			t.Containers[c] = map[string]any{}
		}
		for _, k := range model.SortedKeys(p.Containers[c]) {
			put(t.Containers[c], k, p.Containers[c][k])
		}
	}
}

// merge is lib.recursiveUpdate on JSON-like values: attribute sets are
// merged key by key, anything else is replaced by over.
func merge(base, over any) any {
	bm, ok1 := base.(map[string]any)
	om, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		return model.CloneValue(over)
	}
	out := make(map[string]any, len(bm)+len(om))
	for k, v := range bm {
		out[k] = v
	}
	for k, v := range om {
		out[k] = merge(bm[k], v)
	}
	return out
}
