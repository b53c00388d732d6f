package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// EncodeNix returns the Nix text of a model value (anything ToValue
// accepts), with a trailing newline, that evaluates to the same JSON:
// attribute names sorted and quoted when they are not plain identifiers,
// strings escaped (NixString), ints exact, floats as float literals that
// read back to the same float64, negative numbers in parentheses
// (NixNumber). A string with a NUL byte is an error: Nix strings cannot hold
// one.
func EncodeNix(v any) ([]byte, error) {
	val, err := ToValue(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeNix(&buf, val, ""); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func writeNix(buf *bytes.Buffer, v any, indent string) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case string:
		s, err := NixString(x)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case json.Number:
		s, err := NixNumber(x)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case []any:
		if len(x) == 0 {
			buf.WriteString("[ ]")
			return nil
		}
		buf.WriteString("[\n")
		inner := indent + "  "
		for i, e := range x {
			buf.WriteString(inner)
			if err := writeNix(buf, e, inner); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent)
		buf.WriteByte(']')
	case map[string]any:
		if len(x) == 0 {
			buf.WriteString("{ }")
			return nil
		}
		buf.WriteString("{\n")
		inner := indent + "  "
		for _, k := range SortedKeys(x) {
			name, err := NixAttrName(k)
			if err != nil {
				return err
			}
			buf.WriteString(inner)
			buf.WriteString(name)
			buf.WriteString(" = ")
			if err := writeNix(buf, x[k], inner); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			buf.WriteString(";\n")
		}
		buf.WriteString(indent)
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unsupported value of type %T", v)
	}
	return nil
}

// QuoteNix quotes s as a Nix string literal, usable wherever one is (also
// as an attribute name), for text builders that cannot fail. Nix strings
// cannot hold a NUL byte: each one is written as an interpolated throw, so
// the text parses and evaluating it fails with a clear message, never
// silently cut at the NUL. Writers that can return an error use NixString,
// which refuses a NUL byte.
func QuoteNix(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		q, _ := NixString(s)
		return q
	}
	parts := strings.Split(s, "\x00")
	for i, p := range parts {
		q, _ := NixString(p)
		parts[i] = q[1 : len(q)-1]
	}
	return `"` + strings.Join(parts, `${throw "dydisnix: a string holds a NUL byte"}`) + `"`
}

// NixString quotes s as a Nix string literal: `"`, `\`, `${`, newline,
// carriage return and tab escaped, every other byte as it is. Nix strings
// cannot hold a NUL byte (nix-instantiate would cut the string there); that
// is an error.
func NixString(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("string %q holds a NUL byte, which a Nix string cannot hold", s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
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
	return b.String(), nil
}

var nixIdent = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_'-]*$`)

var nixKeywords = map[string]bool{
	"if": true, "then": true, "else": true, "assert": true, "with": true, "let": true,
	"in": true, "rec": true, "inherit": true, "or": true, "__curPos": true,
}

// IsNixIdent reports whether name can be written bare as a Nix attribute
// name (an identifier that is not a keyword).
func IsNixIdent(name string) bool {
	return nixIdent.MatchString(name) && !nixKeywords[name]
}

// NixAttrName returns name as a Nix attribute name: bare when it is a plain
// identifier, quoted otherwise.
func NixAttrName(name string) (string, error) {
	if IsNixIdent(name) {
		return name, nil
	}
	return NixString(name)
}

// NixNumber writes a number as a Nix literal: integers that fit in 64 bits
// exactly, any other number as a float literal (with a "." so Nix reads a
// float) that reads back to the same float64. Negative numbers are
// parenthesised so they are safe inside lists. Two values have no literal
// and are written as the arithmetic nix-instantiate evaluates back to them:
// the smallest int, (-9223372036854775807 - 1) (Nix reads the literal
// 9223372036854775808 before negating it, and it overflows), and subnormal
// floats, (m / 2^200) with both literals normal.
func NixNumber(n json.Number) (string, error) {
	s := string(n)
	if !validNumber(s) {
		return "", fmt.Errorf("invalid number %q", s)
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case i == math.MinInt64:
			return "(-9223372036854775807 - 1)", nil
		case i < 0:
			return "(" + strconv.FormatInt(i, 10) + ")", nil
		}
		return strconv.FormatInt(i, 10), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %s is out of the range of a Nix float", s)
	}
	neg := math.Signbit(f)
	a := math.Abs(f)
	var text string
	if a != 0 && a < 0x1p-1022 {
		// Nix rejects literals of subnormal floats (strtod reports a range
		// error); scale by a power of two, which is exact both ways.
		text = "(" + nixFloatLiteral(a*0x1p200) + " / " + nixFloatLiteral(0x1p200) + ")"
	} else {
		text = nixFloatLiteral(a)
	}
	if neg {
		return "(-" + text + ")", nil
	}
	return text, nil
}

// nixFloatLiteral writes a non-negative float as a Nix float literal: the
// shortest text that reads back to it, always with a "." in the mantissa.
func nixFloatLiteral(a float64) string {
	text := formatFloat(a)
	mant, exp, hasExp := strings.Cut(text, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	if hasExp {
		return mant + "e" + exp
	}
	return mant
}

// DistributionNix returns a distribution as a Disnix distribution function:
//
//	{infrastructure}:
//
//	{
//	  svc = [
//	    infrastructure.t1
//	  ];
//	  svc2 = {
//	    targets = [
//	      { target = infrastructure.t2; container = "c"; }
//	    ];
//	  };
//	}
//
// Services are sorted. A service whose mappings are all plain target names
// uses the list form; a service with at least one record (or a mapping
// with a container) uses the targets form, where a plain name becomes { target = ...; } (Disnix gives both the
// default container). Names that are not identifiers are quoted.
func DistributionNix(d Distribution) string {
	var b strings.Builder
	b.WriteString("{infrastructure}:\n\n{\n")
	for _, svc := range d.Names() {
		ms := d[svc]
		b.WriteString("  ")
		b.WriteString(quoteAttrName(svc))
		b.WriteString(" = ")
		records := false
		for _, m := range ms {
			records = records || m.Record || m.Container != ""
		}
		switch {
		case len(ms) == 0:
			b.WriteString("[ ];\n")
		case !records:
			b.WriteString("[\n")
			for _, m := range ms {
				b.WriteString("    ")
				b.WriteString(targetRef(m.Target))
				b.WriteByte('\n')
			}
			b.WriteString("  ];\n")
		default:
			b.WriteString("{\n    targets = [\n")
			for _, m := range ms {
				b.WriteString("      { target = ")
				b.WriteString(targetRef(m.Target))
				b.WriteString(";")
				if m.Container != "" {
					b.WriteString(" container = ")
					b.WriteString(QuoteNix(m.Container))
					b.WriteString(";")
				}
				b.WriteString(" }\n")
			}
			b.WriteString("    ];\n  };\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// DistributionNixReference returns a distribution in the exact text of the
// original dydisnix-gendist (xsl/distribution_expr.xsl, dydisnix.md §3.1):
// only plain target names are written, record mappings are dropped. Names
// that are not Nix identifiers are quoted (the original writes them bare,
// which is not valid Nix).
func DistributionNixReference(d Distribution) string {
	var b strings.Builder
	b.WriteString("\n{infrastructure}:\n\n{\n")
	for _, svc := range d.Names() {
		b.WriteString("  ")
		b.WriteString(quoteAttrName(svc))
		b.WriteString(" = [\n")
		for _, m := range d[svc] {
			if m.Record {
				continue
			}
			b.WriteString("    ")
			b.WriteString(targetRef(m.Target))
			b.WriteByte('\n')
		}
		b.WriteString("  ];\n")
	}
	b.WriteString("  \n}\n\t")
	return b.String()
}

func targetRef(name string) string {
	return "infrastructure." + quoteAttrName(name)
}

// quoteAttrName writes name as an attribute name: bare when it is a plain
// identifier, else quoted by QuoteNix (a NUL byte becomes a throw).
func quoteAttrName(name string) string {
	if IsNixIdent(name) {
		return name
	}
	return QuoteNix(name)
}
