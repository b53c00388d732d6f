// Package qos holds the QoS filters of dydisnix and the policy pipeline that
// turns a services and an infrastructure model into a distribution.
//
// The pipeline works on Candidates, an indexed candidate distribution: every
// target and container name is interned once in a Strings table and a
// candidate is a pair of int32 indices, so the 2.5 million pairs of a
// 5000 × 500 cartesian product fit in 20 MB.
package qos

import (
	"sort"

	"github.com/dydisnix/dydisnix/model"
)

// NoContainer marks a candidate that is a plain target name, not a record.
const NoContainer int32 = -1

// Cand is one element of a service's candidate list: a target and, for a
// record element ({target, container}), a container. Indices refer to the
// Candidates' Strings table.
type Cand struct {
	Target    int32
	Container int32 // NoContainer for a plain target name
}

// IsRecord reports whether the candidate was a {target, container} record.
func (c Cand) IsRecord() bool { return c.Container != NoContainer }

// Strings interns target and container names. It is append-only and shared
// by every Candidates value of one pipeline run.
type Strings struct {
	names []string
	index map[string]int32
}

// NewStrings returns an empty table.
func NewStrings() *Strings { return &Strings{index: map[string]int32{}} }

// Intern returns the index of s, adding it when new.
func (t *Strings) Intern(s string) int32 {
	if i, ok := t.index[s]; ok {
		return i
	}
	i := int32(len(t.names))
	t.names = append(t.names, s)
	t.index[s] = i
	return i
}

// Lookup returns the index of s and whether it is known.
func (t *Strings) Lookup(s string) (int32, bool) {
	i, ok := t.index[s]
	return i, ok
}

// Name returns the string at index i.
func (t *Strings) Name(i int32) string { return t.names[i] }

// Len returns the number of interned strings.
func (t *Strings) Len() int { return len(t.names) }

// Candidates is a candidate distribution: for each service (sorted by name)
// the ordered list of its candidates.
type Candidates struct {
	Strings  *Strings
	Services []string // sorted byte-wise
	Lists    [][]Cand // Lists[i] belongs to Services[i]
}

// NewCandidates returns candidates for the given services (sorted here) with
// empty lists, sharing the table strs.
func NewCandidates(strs *Strings, services []string) *Candidates {
	return candidatesOf(strs, append([]string(nil), services...))
}

// candidatesOf is NewCandidates taking services itself (a slice the caller
// gives away, such as the result of Names).
func candidatesOf(strs *Strings, services []string) *Candidates {
	if !sort.StringsAreSorted(services) {
		sort.Strings(services)
	}
	return &Candidates{Strings: strs, Services: services, Lists: make([][]Cand, len(services))}
}

// Derive returns empty candidates with the same services and table, for a
// filter to fill in.
func (c *Candidates) Derive() *Candidates {
	return &Candidates{Strings: c.Strings, Services: c.Services, Lists: make([][]Cand, len(c.Services))}
}

// Index returns the position of a service, or -1.
func (c *Candidates) Index(service string) int {
	i := sort.SearchStrings(c.Services, service)
	if i < len(c.Services) && c.Services[i] == service {
		return i
	}
	return -1
}

// Mapping converts a candidate to a model mapping.
func (c *Candidates) Mapping(x Cand) model.Mapping {
	m := model.Mapping{Target: c.Strings.Name(x.Target)}
	if x.Container != NoContainer {
		m.Record = true
		m.Container = c.Strings.Name(x.Container)
	}
	return m
}

// Cand converts a model mapping to a candidate, interning its names.
func (c *Candidates) Cand(m model.Mapping) Cand {
	x := Cand{Target: c.Strings.Intern(m.Target), Container: NoContainer}
	if m.Record {
		x.Container = c.Strings.Intern(m.Container)
	}
	return x
}

// FromDistribution converts a model distribution to candidates.
func FromDistribution(strs *Strings, d model.Distribution) *Candidates {
	c := candidatesOf(strs, d.Names())
	for i, s := range c.Services {
		ms := d[s]
		list := make([]Cand, len(ms))
		for j, m := range ms {
			list[j] = c.Cand(m)
		}
		c.Lists[i] = list
	}
	return c
}

// Distribution converts the candidates back to a model distribution.
// Services whose lists share a backing array (the cartesian product, or a
// filter's output shared by services with equal inputs) share the converted
// slice too; the slices are capped, so an append copies, but callers must
// not assign to their elements in place.
func (c *Candidates) Distribution() model.Distribution {
	d := make(model.Distribution, len(c.Services))
	type key struct {
		p *Cand
		n int
	}
	var shared map[key][]model.Mapping
	var chunk []model.Mapping // short lists are cut from chunks: few allocations
	for i, s := range c.Services {
		l := c.Lists[i]
		if len(l) == 0 {
			d[s] = []model.Mapping{}
			continue
		}
		k := key{&l[0], len(l)}
		if ms, ok := shared[k]; ok {
			d[s] = ms
			continue
		}
		var ms []model.Mapping
		if len(l) > 16 {
			ms = make([]model.Mapping, 0, len(l))
		} else {
			if cap(chunk)-len(chunk) < len(l) {
				chunk = make([]model.Mapping, 0, 1024)
			}
			ms = chunk[len(chunk):len(chunk)]
			chunk = chunk[:len(chunk)+len(l)]
		}
		for _, x := range l {
			ms = append(ms, c.Mapping(x))
		}
		ms = ms[:len(ms):len(ms)]
		if len(l) > 1 {
			if shared == nil {
				shared = map[key][]model.Mapping{}
			}
			shared[k] = ms
		}
		d[s] = ms
	}
	return d
}
