package model

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"unicode/utf8"
)

// fastJSON decodes JSON in one pass over the bytes into the value
// encoding/json gives with UseNumber (map[string]any, []any, string,
// json.Number, bool, nil), detecting duplicate keys on the way. It is the
// fast path of decodeJSON: encoding/json decodes through reflection and
// duplicateJSONKey scans the text a second time, which together took most
// of a whole dydisnix-gendist run on a 5000-service model. It accepts only
// input it decodes exactly as the slow path would; on anything else
// (invalid JSON, a duplicate key, nesting deeper than encoding/json allows)
// it gives up and decodeJSON decodes again the slow way, for the same value
// or the same error.
type fastJSON struct {
	data  []byte
	pos   int
	depth int
	// members and elems are the stacks of the members of the objects and
	// the elements of the lists being read.
	members []member
	elems   []any
	atoms   atomCache
}

type member struct {
	key   string
	value any
}

// maxFastDepth is encoding/json's nesting limit.
const maxFastDepth = 10000

func decodeJSONFast(data []byte) (any, bool) {
	// Every object is a '{': room for the members of one object per '{'
	// (the outermost object of a model holds most of them) saves growing
	// the stack member by member.
	p := fastJSON{data: data, members: make([]member, 0, bytes.Count(data, []byte{'{'})+8)}
	return p.document()
}

// decodeObjectMembers is decodeJSONFast for a document that is an object,
// handing each of its members to member as soon as it is read (while it is
// still in the processor's cache) instead of making a map of them. The
// members are read in up to parts parts at once, each by its own
// goroutine: member(part, key, value) is called from the goroutine of the
// part, in the order of the document within a part. ok is false when the
// document is not an object, when the fast path gives up or when member
// returns false.
func decodeObjectMembers(data []byte, parts int, member func(part int, key string, value any) bool) bool {
	start := 0
	for start < len(data) && isSpace(data[start]) {
		start++
	}
	end := len(data) - 1
	for end >= 0 && isSpace(data[end]) {
		end--
	}
	if start >= end || data[start] != '{' || data[end] != '}' {
		return false
	}
	empty := true
	for _, c := range data[start+1 : end] {
		if !isSpace(c) {
			empty = false
			break
		}
	}
	if empty {
		return true // {}
	}
	// bounds[i]..bounds[i+1] are the members of part i, between commas
	bounds := []int{start + 1}
	for i, from := 1, start+1; i < parts; i++ {
		at := memberBoundary(data, from, start+(end-start)*i/parts)
		if at < 0 {
			break
		}
		bounds = append(bounds, at)
		from = at + 1
	}
	bounds = append(bounds, end)
	n := len(bounds) - 1
	ok := make([]bool, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[i] = membersPart(data, bounds[i]+1, bounds[i+1], func(k string, v any) bool { return member(i, k, v) })
		}()
	}
	ok[0] = membersPart(data, bounds[0], bounds[1], func(k string, v any) bool { return member(0, k, v) })
	wg.Wait()
	return !slices.Contains(ok, false)
}

// membersPart reads the members "key": value, separated by commas, in
// data[from:to]: one at least, and all of them.
func membersPart(data []byte, from, to int, member func(key string, value any) bool) bool {
	p := fastJSON{data: data[:to], pos: from, depth: 1} // the members of the outermost object
	for {
		k, v, ok := p.member()
		if !ok || !member(k, v) {
			return false
		}
		p.space()
		if p.pos == to {
			return true
		}
		if p.data[p.pos] != ',' {
			return false
		}
		p.pos++
	}
}

// memberBoundary returns the position of the first comma at or after mid
// that separates two members of the object whose members start at from, or
// -1. It only follows strings and nesting: membersPart checks the rest.
func memberBoundary(data []byte, from, mid int) int {
	depth := 0
	for i := from; i < len(data); i++ {
		switch data[i] {
		case '"':
			// skip the string: the next quote that no backslash escapes
			for {
				j := bytes.IndexByte(data[i+1:], '"')
				if j < 0 {
					return -1
				}
				i += 1 + j
				k := i - 1
				for k > from && data[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth < 0 {
				return -1
			}
		case ',':
			if depth == 0 && i >= mid {
				return i
			}
		}
	}
	return -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *fastJSON) document() (any, bool) {
	v, ok := p.value()
	if !ok {
		return nil, false
	}
	p.space()
	return v, p.pos == len(p.data)
}

func (p *fastJSON) space() {
	for p.pos < len(p.data) && isSpace(p.data[p.pos]) {
		p.pos++
	}
}

func (p *fastJSON) value() (any, bool) {
	p.space()
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.stringValue()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *fastJSON) literal(word string) bool {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return false
	}
	p.pos += len(word)
	return true
}

func (p *fastJSON) object() (any, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return nil, false
	}
	p.pos++ // {
	// The members are gathered on a stack shared by every object being
	// read, so that the map is made at its final size: a growing map
	// rehashes, and a 5000-service model is one object of 5000 members.
	base := len(p.members)
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return map[string]any{}, true
	}
	for more := true; more; {
		k, v, ok := p.member()
		if !ok {
			return nil, false
		}
		p.members = append(p.members, member{k, v})
		if more, ok = p.next('}'); !ok {
			return nil, false
		}
	}
	members := p.members[base:]
	m := make(map[string]any, len(members))
	for _, kv := range members {
		m[kv.key] = kv.value
	}
	clear(members) // drop the references held by the stack
	p.members = p.members[:base]
	if len(m) != len(members) {
		return nil, false // a repeated key
	}
	return m, true
}

// member reads one member of an object: "key": value.
func (p *fastJSON) member() (string, any, bool) {
	p.space()
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", nil, false
	}
	k, ok := p.string(true)
	if !ok {
		return "", nil, false
	}
	p.space()
	if p.pos >= len(p.data) || p.data[p.pos] != ':' {
		return "", nil, false
	}
	p.pos++
	v, ok := p.value()
	return k, v, ok
}

// next reads what follows a member or an element: a comma (more is true)
// or the closing byte of the object or list, which ends it.
func (p *fastJSON) next(closing byte) (more, ok bool) {
	p.space()
	if p.pos >= len(p.data) {
		return false, false
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		return true, true
	case closing:
		p.pos++
		p.depth--
		return false, true
	}
	return false, false
}

func (p *fastJSON) array() (any, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return nil, false
	}
	p.pos++ // [
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return []any{}, true
	}
	base := len(p.elems) // gathered like an object's members, for an exact size
	for more := true; more; {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		p.elems = append(p.elems, v)
		if more, ok = p.next(']'); !ok {
			return nil, false
		}
	}
	elems := p.elems[base:]
	l := append([]any(nil), elems...)
	clear(elems) // drop the references held by the stack
	p.elems = p.elems[:base]
	return l, true
}

// stringValue reads a string value, boxed.
func (p *fastJSON) stringValue() (any, bool) {
	if raw := p.plainString(); raw != nil {
		return p.atoms.get(raw, false), true
	}
	s, ok := p.string(false)
	return s, ok
}

// plainString reads a string literal without escapes, in valid UTF-8, of
// at most maxAtom bytes, and returns its bytes; nil (and p.pos unchanged)
// for any other string.
func (p *fastJSON) plainString() []byte {
	end := min(len(p.data), p.pos+1+maxAtom+1)
	for i := p.pos + 1; i < end; i++ {
		switch c := p.data[i]; {
		case c == '"':
			raw := p.data[p.pos+1 : i]
			p.pos = i + 1
			return raw
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return nil
		}
	}
	return nil
}

// string reads a string literal at p.pos. Escapes are decoded by
// encoding/json itself, so the result is always its result. Text that is
// not valid UTF-8 makes it give up: decodeJSONSlow refuses it (encoding/json
// would replace the bad bytes with U+FFFD, silently making two different
// keys one).
func (p *fastJSON) string(key bool) (string, bool) {
	start := p.pos
	escaped, ascii := false, true
	i := start + 1
	for ; i < len(p.data); i++ {
		c := p.data[i]
		switch {
		case c == '"':
			raw := p.data[start+1 : i]
			p.pos = i + 1
			if !ascii && !utf8.Valid(raw) {
				return "", false // an error: the slow path names the place
			}
			if escaped {
				var s string
				if err := json.Unmarshal(p.data[start:i+1], &s); err != nil {
					return "", false
				}
				return s, true
			}
			// The keys of the outermost object (the services, the
			// targets) are unique: only deeper keys repeat.
			if key && p.depth > 1 && len(raw) <= maxAtom {
				return p.atoms.get(raw, false).(string), true
			}
			return string(raw), true
		case c == '\\':
			escaped = true
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// maxAtom is the longest string or number text the atom cache keeps.
const maxAtom = 32

// atomCache keeps recently read short strings and numbers, boxed as the
// values they become, in a small direct-mapped table: a model repeats its
// attribute names and many of its values (types, memory sizes) once per
// service, and a repeated atom then costs no allocation. Unlike a map, the
// table never grows: a new atom simply takes the place of an older one.
type atomCache struct {
	slots [512]atom
}

type atom struct {
	text   string
	number bool
	v      any // the boxed string or json.Number
}

func (c *atomCache) get(b []byte, number bool) any {
	h := uint32(2166136261) // FNV-1a
	for _, x := range b {
		h = (h ^ uint32(x)) * 16777619
	}
	a := &c.slots[h%uint32(len(c.slots))]
	if a.v != nil && a.number == number && a.text == string(b) {
		return a.v
	}
	a.text, a.number = string(b), number
	if number {
		a.v = json.Number(a.text)
	} else {
		a.v = a.text
	}
	return a.v
}

// number reads a number with JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *fastJSON) number() (any, bool) {
	d, i := p.data, p.pos
	start := i
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.pos = i
	if i-start <= maxAtom {
		return p.atoms.get(d[start:i], true), true
	}
	return json.Number(d[start:i]), true
}
