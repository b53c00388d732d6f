package qos

import (
	"fmt"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// Capacity and property helpers shared by the algorithmic filters (divide,
// minsetcover, multiwaycut, graphcol, spread, preferPrevious); their
// parameters are read with the Params methods like every filter's. They
// carry an "alg" prefix so they never clash with the helpers of the
// Nix-style filters.

// algCapacityParams reads the capacity dimensions of divide and
// preferPrevious: the reference pair serviceProperty/targetProperty and the
// extension lists serviceProperties/targetProperties (paired by position).
// The single pair, when given, is the first dimension. required says whether
// at least one dimension must be given.
func algCapacityParams(filter string, p Params, required bool) ([]Capacity, error) {
	sp, hasSP, err := p.Str("serviceProperty")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filter, err)
	}
	tp, hasTP, err := p.Str("targetProperty")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filter, err)
	}
	sps, hasSPs, err := p.Strs("serviceProperties")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filter, err)
	}
	tps, hasTPs, err := p.Strs("targetProperties")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filter, err)
	}
	if hasSP != hasTP {
		return nil, fmt.Errorf("%s: parameters serviceProperty and targetProperty must be given together", filter)
	}
	if hasSPs != hasTPs || len(sps) != len(tps) {
		return nil, fmt.Errorf("%s: parameters serviceProperties (%d) and targetProperties (%d) must be lists of the same length", filter, len(sps), len(tps))
	}
	var dims []Capacity
	if hasSP {
		dims = append(dims, Capacity{ServiceProperty: sp, TargetProperty: tp})
	}
	for i := range sps {
		dims = append(dims, Capacity{ServiceProperty: sps[i], TargetProperty: tps[i]})
	}
	if required && len(dims) == 0 {
		return nil, fmt.Errorf("%s: parameters serviceProperty and targetProperty (or the lists serviceProperties and targetProperties) are required", filter)
	}
	for i, d := range dims {
		if d.ServiceProperty == "" || d.TargetProperty == "" {
			return nil, fmt.Errorf("%s: capacity %d: empty property name", filter, i+1)
		}
	}
	return dims, nil
}

// Capacity is one capacity dimension of divide and preferPrevious: a
// service's requirement property and the target property it consumes.
type Capacity struct {
	ServiceProperty string
	TargetProperty  string
}

// algTargetNumber returns atoi(properties.<key>) of a target, as the C tools
// compute it. ok is false when the target is unknown, lacks the property or
// the property is a list, attribute set or null.
func algTargetNumber(infra model.Infrastructure, target, key string) (int64, bool) {
	t := infra[target]
	if t == nil {
		return 0, false
	}
	v, ok := t.Property(key)
	if !ok {
		return 0, false
	}
	text, ok := model.ScalarText(v)
	if !ok {
		return 0, false
	}
	return model.Atoi(text), true
}

// algServiceNumber returns atoi of a service property as divide sees it
// (the C tools' properties table: name, type, group, providesContainer(s),
// dependsOn and connectsTo are not properties).
func algServiceNumber(services model.Services, service, key string) (int64, error) {
	s := services[service]
	var v any
	ok := false
	if s != nil {
		v, ok = s.Property(key)
	}
	if !ok {
		return 0, fmt.Errorf("Service: %s has no property named: %s", service, key)
	}
	text, ok := model.ScalarText(v)
	if !ok {
		return 0, fmt.Errorf("Service: %s property %s: expected a number, got %s", service, key, model.TypeName(v))
	}
	if !numericText(text) {
		return 0, fmt.Errorf("Service: %s property %s: expected a number, got %q", service, key, text)
	}
	return model.Atoi(text), nil
}

// numericText reports whether text starts, after white space and a sign,
// with a digit: what C's atoi reads as a number. "20", " 3", "1.5" and
// "100MB" are numbers (20, 3, 1, 100 as in the reference); "abc", "" and
// true are not, and are refused instead of silently becoming 0.
func numericText(text string) bool {
	i := 0
	for i < len(text) && strings.ContainsRune(" \t\n\r\f\v", rune(text[i])) {
		i++
	}
	if i < len(text) && (text[i] == '+' || text[i] == '-') {
		i++
	}
	return i < len(text) && text[i] >= '0' && text[i] <= '9'
}

// checkTargetNumbers refuses a target whose capacity property is a scalar
// that is not a number (a typo such as mem = "lots" must not read as 0).
// Targets without the property, or with a list or attribute set, are
// skipped by the filters as before.
func checkTargetNumbers(infra model.Infrastructure, keys ...string) error {
	for _, name := range infra.Names() {
		for _, key := range keys {
			v, ok := infra[name].Property(key)
			if !ok {
				continue
			}
			if text, ok := model.ScalarText(v); ok && !numericText(text) {
				return fmt.Errorf("target %s: property %s: expected a number, got %q", name, key, text)
			}
		}
	}
	return nil
}

// capTable holds the remaining capacity of every target for a list of
// dimensions, indexed by the Strings index of the target name. It is filled
// lazily, so a Strings table with container names costs nothing.
type capTable struct {
	infra  model.Infrastructure
	strs   *Strings
	dims   []Capacity
	state  []uint8 // 0 unknown, 1 present, 2 absent (some dimension missing)
	cap    []int64 // len(dims) values per Strings index
	total  []float64
	totals bool
}

func newCapTable(infra model.Infrastructure, strs *Strings, dims []Capacity) *capTable {
	n := strs.Len()
	return &capTable{infra: infra, strs: strs, dims: dims, state: make([]uint8, n), cap: make([]int64, n*len(dims))}
}

// get returns the remaining capacities of target t (a slice into the table,
// writable) and whether the target has every capacity property.
func (c *capTable) get(t int32) ([]int64, bool) {
	k := len(c.dims)
	if int(t) >= len(c.state) {
		// Interned after the table was made: filters using the table do
		// not intern, and rows handed out must stay valid (no regrowth).
		return nil, false
	}
	switch c.state[t] {
	case 1:
		return c.cap[int(t)*k : int(t)*k+k], true
	case 2:
		return nil, false
	}
	name := c.strs.Name(t)
	row := c.cap[int(t)*k : int(t)*k+k]
	for i, d := range c.dims {
		v, ok := algTargetNumber(c.infra, name, d.TargetProperty)
		if !ok {
			c.state[t] = 2
			return nil, false
		}
		row[i] = v
	}
	c.state[t] = 1
	return row, true
}

// missing names the first capacity property target t lacks.
func (c *capTable) missing(t int32) string {
	name := c.strs.Name(t)
	for _, d := range c.dims {
		if _, ok := algTargetNumber(c.infra, name, d.TargetProperty); !ok {
			return d.TargetProperty
		}
	}
	return ""
}

// weights returns, per dimension, the divisor used to normalise capacities
// when several dimensions are compared: the sum of the initial capacities of
// every target of the infrastructure that has the property (1 when that sum
// is not positive).
func (c *capTable) weights() []float64 {
	if c.totals {
		return c.total
	}
	c.total = make([]float64, len(c.dims))
	for i, d := range c.dims {
		var sum float64
		for name := range c.infra {
			if v, ok := algTargetNumber(c.infra, name, d.TargetProperty); ok && v > 0 {
				sum += float64(v)
			}
		}
		if sum <= 0 {
			sum = 1
		}
		c.total[i] = sum
	}
	c.totals = true
	return c.total
}

func algFits(req, cap []int64) bool {
	for i := range req {
		if req[i] > cap[i] {
			return false
		}
	}
	return true
}

// formatDims renders "mem=5, cpu=2" for explanations.
func algFormatDims(dims []Capacity, vals []int64, target bool) string {
	var b strings.Builder
	for i, d := range dims {
		if i > 0 {
			b.WriteString(", ")
		}
		name := d.ServiceProperty
		if target {
			name = d.TargetProperty
		}
		fmt.Fprintf(&b, "%s=%d", name, vals[i])
	}
	return b.String()
}
