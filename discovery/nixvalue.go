package discovery

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FormatNix writes a JSON-like value (string, bool, json.Number, []any,
// map[string]any, nil) as a Nix value in the layout the original publisher
// uses: strings quoted, numbers bare, lists "[ "a" "b" ]", attribute sets
// "{ "k" = v; }" with sorted keys.
func FormatNix(v any) (string, error) {
	var b strings.Builder
	if err := formatNix(&b, v, 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

const maxNixDepth = 32

func formatNix(b *strings.Builder, v any, depth int) error {
	if depth > maxNixDepth {
		return fmt.Errorf("value nested deeper than %d levels", maxNixDepth)
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		b.WriteString(QuoteNix(x))
	case json.Number:
		s, err := nixNumber(x)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		s, err := nixNumber(json.Number(strconv.FormatFloat(x, 'g', -1, 64)))
		if err != nil {
			return err
		}
		b.WriteString(s)
	case []any:
		b.WriteString("[")
		for _, e := range x {
			b.WriteString(" ")
			if err := formatNix(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteString(" ]")
	case []string:
		b.WriteString("[")
		for _, e := range x {
			b.WriteString(" ")
			b.WriteString(QuoteNix(e))
		}
		b.WriteString(" ]")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{")
		for _, k := range keys {
			b.WriteString(" ")
			b.WriteString(QuoteNix(k))
			b.WriteString(" = ")
			if err := formatNix(b, x[k], depth+1); err != nil {
				return err
			}
			b.WriteString(";")
		}
		b.WriteString(" }")
	default:
		return fmt.Errorf("cannot write a value of type %T as Nix", v)
	}
	return nil
}

// nixNumber renders a JSON number in Nix syntax. Negative numbers are
// parenthesised (a bare "-1" is not a list element in Nix) and floats always
// carry a decimal point.
func nixNumber(n json.Number) (string, error) {
	s := string(n)
	neg := strings.HasPrefix(s, "-")
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		if neg {
			return "(" + s + ")", nil
		}
		return s, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("invalid number %q", s)
	}
	out := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(out, ".") {
		out += ".0"
	}
	if neg {
		return "(" + out + ")", nil
	}
	return out, nil
}

// QuoteNix quotes a string as a Nix string literal.
func QuoteNix(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteString(`\$`)
			} else {
				b.WriteByte('$')
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// nixParser reads the subset of Nix that TXT values use: strings, numbers,
// true/false/null, lists, attribute sets and parentheses. Anything else
// (functions, paths, interpolation, let, with, ...) is an error.
type nixParser struct {
	s   string
	pos int
}

// ParseNixValue parses one Nix value (the subset described at nixParser)
// into its JSON-like form.
func ParseNixValue(s string) (any, error) {
	p := &nixParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skip()
	if p.pos != len(p.s) {
		return nil, p.errf("unexpected %q after the value", p.rest())
	}
	return v, nil
}

func (p *nixParser) errf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *nixParser) rest() string {
	r := p.s[p.pos:]
	if len(r) > 16 {
		r = r[:16] + "..."
	}
	return r
}

func (p *nixParser) skip() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		case '#':
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *nixParser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *nixParser) value(depth int) (any, error) {
	if depth > maxNixDepth {
		return nil, p.errf("value nested deeper than %d levels", maxNixDepth)
	}
	p.skip()
	if p.pos >= len(p.s) {
		return nil, p.errf("expected a value, got the end of the text")
	}
	c := p.s[p.pos]
	switch {
	case c == '"':
		return p.str()
	case c == '[':
		p.pos++
		out := []any{}
		for {
			p.skip()
			if p.peek() == ']' {
				p.pos++
				return out, nil
			}
			if p.pos >= len(p.s) {
				return nil, p.errf("unterminated list")
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	case c == '{':
		p.pos++
		out := map[string]any{}
		for {
			p.skip()
			if p.peek() == '}' {
				p.pos++
				return out, nil
			}
			if p.pos >= len(p.s) {
				return nil, p.errf("unterminated attribute set")
			}
			path, err := p.attrPath()
			if err != nil {
				return nil, err
			}
			p.skip()
			if p.peek() != '=' {
				return nil, p.errf("expected '=' after attribute name, got %q", p.rest())
			}
			p.pos++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := setPath(out, path, v); err != nil {
				return nil, p.errf("%v", err)
			}
			p.skip()
			if p.peek() != ';' {
				return nil, p.errf("expected ';' after attribute value, got %q", p.rest())
			}
			p.pos++
		}
	case c == '(':
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.skip()
		if p.peek() != ')' {
			return nil, p.errf("expected ')', got %q", p.rest())
		}
		p.pos++
		return v, nil
	case c == '-' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	case isIdentStart(c):
		id := p.ident()
		switch id {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
		return nil, p.errf("unsupported Nix expression %q (expected a string, number, bool, null, list or attribute set)", id)
	}
	return nil, p.errf("unexpected %q: expected a Nix value", p.rest())
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '\''
}

func (p *nixParser) ident() string {
	start := p.pos
	for p.pos < len(p.s) && isIdentChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *nixParser) number() (any, error) {
	start := p.pos
	if p.peek() == '-' {
		p.pos++
	}
	digits := 0
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
		digits++
	}
	isFloat := false
	if p.peek() == '.' {
		isFloat = true
		p.pos++
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
			digits++
		}
	}
	if isFloat && (p.peek() == 'e' || p.peek() == 'E') {
		p.pos++
		if p.peek() == '+' || p.peek() == '-' {
			p.pos++
		}
		exp := 0
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
			exp++
		}
		if exp == 0 {
			return nil, p.errf("malformed number exponent")
		}
	}
	text := p.s[start:p.pos]
	if digits == 0 {
		return nil, p.errf("malformed number %q", text)
	}
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, p.errf("malformed number %q", text)
		}
		out := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(out, ".") {
			out += ".0"
		}
		return json.Number(out), nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, p.errf("integer %q out of range", text)
	}
	return json.Number(strconv.FormatInt(n, 10)), nil
}

func (p *nixParser) str() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch c {
		case '"':
			p.pos++
			out := b.String()
			if !utf8.ValidString(out) {
				return "", p.errf("string is not valid UTF-8")
			}
			return out, nil
		case '\\':
			if p.pos+1 >= len(p.s) {
				return "", p.errf("unterminated escape")
			}
			e := p.s[p.pos+1]
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(e)
			}
			p.pos += 2
		case '$':
			if p.pos+1 < len(p.s) && p.s[p.pos+1] == '{' {
				return "", p.errf("string interpolation is not supported")
			}
			b.WriteByte(c)
			p.pos++
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", p.errf("unterminated string")
}

// attrPath reads an attribute path: elements are identifiers or quoted
// strings separated by dots.
func (p *nixParser) attrPath() ([]string, error) {
	var path []string
	for {
		p.skip()
		c := p.peek()
		switch {
		case c == '"':
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			path = append(path, s)
		case isIdentStart(c):
			path = append(path, p.ident())
		default:
			return nil, p.errf("expected an attribute name, got %q", p.rest())
		}
		p.skip()
		if p.peek() != '.' {
			return path, nil
		}
		p.pos++
		if len(path) > maxNixDepth {
			return nil, p.errf("attribute path longer than %d elements", maxNixDepth)
		}
	}
}

// setPath assigns v at path inside m, creating attribute sets on the way, as
// Nix does for "a.b.c = v;". Assigning twice to the same path is an error.
func setPath(m map[string]any, path []string, v any) error {
	for i, k := range path[:len(path)-1] {
		next, ok := m[k]
		if !ok {
			n := map[string]any{}
			m[k] = n
			m = n
			continue
		}
		nm, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("attribute %q is already defined", strings.Join(path[:i+1], "."))
		}
		m = nm
	}
	last := path[len(path)-1]
	if old, ok := m[last]; ok {
		om, ok1 := old.(map[string]any)
		nm, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			for k, e := range nm {
				if err := setPath(om, []string{k}, e); err != nil {
					return fmt.Errorf("attribute %q: %w", strings.Join(path, "."), err)
				}
			}
			return nil
		}
		return fmt.Errorf("attribute %q is already defined", strings.Join(path, "."))
	}
	m[last] = v
	return nil
}
