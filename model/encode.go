package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// ToValue converts a model value to its JSON-like form (string, bool,
// json.Number, []any, map[string]any, nil). It accepts the model types
// (Services, *Service, Infrastructure, *Target, Distribution, []Mapping,
// Mapping), JSON-like values, Go numbers, string slices and maps of them;
// any other type goes through encoding/json.
func ToValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool:
		return x, nil
	case json.Number:
		return x, nil
	case int, int64, uint64, float64:
		return Normalize(x)
	case int32:
		return Normalize(int64(x))
	case uint32:
		return Normalize(uint64(x))
	case uint:
		return Normalize(uint64(x))
	case float32:
		return Normalize(float64(x))
	case []any:
		return convertList(x, ToValue)
	case map[string]any:
		return convertAttrs(x, ToValue)
	case []string:
		return stringsToAny(x), nil
	case map[string]string:
		return convertAttrs(x, func(e string) (any, error) { return e, nil })
	case map[string][]string:
		return convertAttrs(x, func(e []string) (any, error) { return stringsToAny(e), nil })
	case map[string]map[string]any:
		return convertAttrs(x, func(e map[string]any) (any, error) { return ToValue(e) })
	case *Service:
		return ToValue(x.ToMap())
	case Services:
		return collectionValue(x, (*Service).ToMap)
	case *Target:
		return ToValue(x.ToMap())
	case Infrastructure:
		return collectionValue(x, (*Target).ToMap)
	case Mapping:
		return mappingValue(x), nil
	case []Mapping:
		return mappingsValue(x), nil
	case Distribution:
		out := make(map[string]any, len(x))
		for k, ms := range x {
			out[k] = mappingsValue(ms)
		}
		return out, nil
	}
	if v == nil || (reflect.ValueOf(v).Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil()) {
		return nil, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %T to a model value: %w", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("cannot convert %T to a model value: %w", v, err)
	}
	return out, nil
}

func mappingValue(m Mapping) any {
	if !m.Record {
		return m.Target
	}
	rec := map[string]any{"target": m.Target}
	if m.Container != "" {
		rec["container"] = m.Container
	}
	return rec
}

func mappingsValue(ms []Mapping) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = mappingValue(m)
	}
	return out
}

// EncodeJSON returns the stable JSON text of a model value: keys sorted
// byte-wise, two-space indentation, no HTML escaping, a trailing newline.
// Numbers are written as they are held (1.0 stays 1.0).
func EncodeJSON(v any) ([]byte, error) {
	if d, ok := v.(Distribution); ok {
		return encodeDistributionJSON(d), nil
	}
	buf, err := encodeJSON(v, true, false)
	if err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// CanonicalJSON returns the canonical encoding of a model value used for
// hashing: compact, keys sorted byte-wise, strings escaped minimally, and
// numbers normalised by value (see CanonicalNumber), so 1, 1.0 and 1e0 encode
// alike, as Nix compares them equal.
func CanonicalJSON(v any) ([]byte, error) {
	buf, err := encodeJSON(v, false, true)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeJSON converts a model value (ToValue) and writes it as JSON,
// indented when pretty, with numbers normalised when canonical.
func encodeJSON(v any, pretty, canonical bool) (*bytes.Buffer, error) {
	val, err := ToValue(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, val, "", pretty, canonical); err != nil {
		return nil, err
	}
	return &buf, nil
}

// Hash returns the hex SHA-256 of the canonical encoding of a model value
// (CanonicalJSON). Two models that mean the same — whatever the key order,
// the file format (JSON, YAML, Nix) or the spelling of numbers — hash alike.
// A value that cannot be encoded hashes its error text, so Hash never fails.
func Hash(v any) string {
	data, err := CanonicalJSON(v)
	if err != nil {
		data = []byte("error: " + err.Error())
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Hash returns the canonical hash of the services model.
func (s Services) Hash() string { return Hash(s) }

// Hash returns the canonical hash of the infrastructure model.
func (i Infrastructure) Hash() string { return Hash(i) }

// Hash returns the canonical hash of the distribution.
func (d Distribution) Hash() string { return Hash(d) }

// CanonicalNumber normalises a number by value: a number with an integral
// value that fits in 64 bits is written as an integer ("1.0" → "1",
// "1e3" → "1000"), any other number as the shortest float text that reads
// back to the same float64 ("0.10" → "0.1"). Numbers beyond the float64
// range are kept as written.
func CanonicalNumber(n json.Number) (string, error) {
	s := string(n)
	if !validNumber(s) {
		return "", fmt.Errorf("invalid number %q", s)
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return s, nil
	}
	if f == math.Trunc(f) && f >= -9.223372036854775808e18 && f < 9.223372036854775808e18 {
		return strconv.FormatInt(int64(f), 10), nil
	}
	return formatFloat(f), nil
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return false
	}
	return json.Valid([]byte(s))
}

func writeJSON(buf *bytes.Buffer, v any, indent string, pretty, canonical bool) error {
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
		appendJSONString(buf, x)
	case json.Number:
		if canonical {
			s, err := CanonicalNumber(x)
			if err != nil {
				return err
			}
			buf.WriteString(s)
		} else {
			if !validNumber(string(x)) {
				return fmt.Errorf("invalid number %q", string(x))
			}
			buf.WriteString(string(x))
		}
	case []any:
		if len(x) == 0 {
			buf.WriteString("[]")
			return nil
		}
		buf.WriteByte('[')
		inner := indent + "  "
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if pretty {
				buf.WriteByte('\n')
				buf.WriteString(inner)
			}
			if err := writeJSON(buf, e, inner, pretty, canonical); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		if pretty {
			buf.WriteByte('\n')
			buf.WriteString(indent)
		}
		buf.WriteByte(']')
	case map[string]any:
		if len(x) == 0 {
			buf.WriteString("{}")
			return nil
		}
		buf.WriteByte('{')
		inner := indent + "  "
		for i, k := range SortedKeys(x) {
			if i > 0 {
				buf.WriteByte(',')
			}
			if pretty {
				buf.WriteByte('\n')
				buf.WriteString(inner)
			}
			appendJSONString(buf, k)
			buf.WriteByte(':')
			if pretty {
				buf.WriteByte(' ')
			}
			if err := writeJSON(buf, x[k], inner, pretty, canonical); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		if pretty {
			buf.WriteByte('\n')
			buf.WriteString(indent)
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unsupported value of type %T", v)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: `"`, `\` and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, nothing else escaped.
func appendJSONString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case c == '\n':
				buf.WriteString(`\n`)
			case c == '\r':
				buf.WriteString(`\r`)
			case c == '\t':
				buf.WriteString(`\t`)
			case c < 0x20 || c == 0x7f:
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xf])
			default:
				buf.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(`\ufffd`)
		} else {
			buf.WriteString(s[i : i+size])
		}
		i += size
	}
	buf.WriteByte('"')
}

// collectionValue converts a services or infrastructure model (name → entry)
// to its JSON-like form; a nil entry becomes null.
func collectionValue[E any](m map[string]*E, toMap func(*E) map[string]any) (any, error) {
	return convertAttrs(m, func(e *E) (any, error) {
		if e == nil {
			return nil, nil
		}
		return ToValue(toMap(e))
	})
}
