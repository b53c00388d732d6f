package discovery

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dydisnix/dydisnix/model"
)

// FormatNix writes a JSON-like value (string, bool, json.Number, []any,
// map[string]any, nil; also int, float64 and []string) as a Nix value in the
// layout the original publisher uses: strings quoted, numbers bare, lists
// "[ "a" "b" ]", attribute sets "{ "k" = v; }" with sorted keys. Strings,
// names and numbers are written by the model's Nix printer (model.NixString,
// model.NixNumber), so nix-instantiate reads the text back as the value: a
// NUL byte in a string is an error, and the smallest int and subnormal
// floats are written as the arithmetic ParseNixValue also reads.
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
		b.WriteString(strconv.FormatBool(x))
	case string:
		return writeString(b, x)
	case json.Number:
		s, err := model.NixNumber(x)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case int, float64:
		n, err := model.Normalize(x)
		if err != nil {
			return err
		}
		return formatNix(b, n, depth)
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
			if err := writeString(b, e); err != nil {
				return err
			}
		}
		b.WriteString(" ]")
	case map[string]any:
		b.WriteString("{")
		for _, k := range model.SortedKeys(x) {
			b.WriteString(" ")
			if err := writeString(b, k); err != nil {
				return err
			}
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

func writeString(b *strings.Builder, s string) error {
	q, err := model.NixString(s)
	if err != nil {
		return err
	}
	b.WriteString(q)
	return nil
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
		if op := p.peek(); op == '-' || op == '/' {
			// The one operation model.NixNumber writes: (a - b) or (a / b).
			p.pos++
			w, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if v, err = arith(v, op, w); err != nil {
				return nil, p.errf("%v", err)
			}
			p.skip()
		}
		if p.peek() != ')' {
			return nil, p.errf("expected ')', got %q", p.rest())
		}
		p.pos++
		return v, nil
	case c == '-' && strings.HasPrefix(strings.TrimLeft(p.s[p.pos+1:], " \t\n\r"), "("):
		// -( ... ): a negated parenthesised number.
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		n, err := arith(json.Number("0"), '-', v)
		if err != nil {
			return nil, p.errf("%v", err)
		}
		return n, nil
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
		return floatNumber(f), nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, p.errf("integer %q out of range", text)
	}
	return json.Number(strconv.FormatInt(n, 10)), nil
}

// floatNumber writes a float as the parser's numbers hold it: positional
// notation, always with a ".".
func floatNumber(f float64) json.Number {
	out := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(out, ".") {
		out += ".0"
	}
	return json.Number(out)
}

// arith computes a - b or a / b as Nix does: on two ints an int (division
// truncates; overflow is an error, where Nix would wrap), else a float.
func arith(a any, op byte, b any) (json.Number, error) {
	x, ok1 := a.(json.Number)
	y, ok2 := b.(json.Number)
	if !ok1 || !ok2 {
		return "", fmt.Errorf("cannot compute %c with a %s and a %s", op, model.TypeName(a), model.TypeName(b))
	}
	if model.IsInt(x) && model.IsInt(y) {
		i, _ := x.Int64()
		j, _ := y.Int64()
		switch {
		case op == '-' && (j > 0 && i < math.MinInt64+j || j < 0 && i > math.MaxInt64+j):
			return "", fmt.Errorf("integer overflow in %d - %d", i, j)
		case op == '-':
			return json.Number(strconv.FormatInt(i-j, 10)), nil
		case j == 0:
			return "", fmt.Errorf("division by zero")
		case i == math.MinInt64 && j == -1:
			return "", fmt.Errorf("integer overflow in %d / %d", i, j)
		}
		return json.Number(strconv.FormatInt(i/j, 10)), nil
	}
	f, err1 := x.Float64()
	g, err2 := y.Float64()
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("malformed number in %s %c %s", x, op, y)
	}
	r := f - g
	if op == '/' {
		if g == 0 {
			return "", fmt.Errorf("division by zero")
		}
		r = f / g
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return "", fmt.Errorf("%s %c %s is not a finite number", x, op, y)
	}
	return floatNumber(r), nil
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
