package model

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Normalize converts a decoded value (from encoding/json with UseNumber, or
// from yaml.v3) to the JSON-like form used throughout the model: string,
// bool, json.Number, []any, map[string]any or nil. Integer and float Go
// types become json.Number.
func Normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, json.Number:
		return x, nil
	case int:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("number %v is not finite", x)
		}
		if x == math.Trunc(x) && math.Abs(x) < 1e21 {
			// An integral float64 (encoding/json without UseNumber gives
			// these for every number) is written as an integer.
			return json.Number(strconv.FormatFloat(x, 'f', -1, 64)), nil
		}
		return json.Number(formatFloat(x)), nil
	case []any:
		return convertList(x, Normalize)
	case map[string]any:
		return convertAttrs(x, Normalize)
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("key %v: expected a string key, got %T", k, k)
			}
			n, err := Normalize(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ks, err)
			}
			out[ks] = n
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}

// convertList converts each element of a list with conv; an error names
// the index of the element.
func convertList(x []any, conv func(any) (any, error)) ([]any, error) {
	out := make([]any, len(x))
	for i, e := range x {
		n, err := conv(e)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = n
	}
	return out, nil
}

// convertAttrs converts each value of an attribute set with conv; an error
// names the key.
func convertAttrs[V any](x map[string]V, conv func(V) (any, error)) (map[string]any, error) {
	out := make(map[string]any, len(x))
	for k, e := range x {
		n, err := conv(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = n
	}
	return out, nil
}

// TypeName names the kind of a JSON-like value for error messages.
func TypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case json.Number:
		if IsInt(x) {
			return "int"
		}
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "attribute set"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// IsInt reports whether a number is written as an integer.
func IsInt(n json.Number) bool {
	_, err := strconv.ParseInt(string(n), 10, 64)
	return err == nil
}

// ScalarText renders a scalar as the original C tools do (libnixxml turns
// every scalar into text): strings verbatim, numbers as written, bools as
// "true"/"false". ok is false for lists, attribute sets and null.
func ScalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// Atoi parses text like C's atoi: leading white space and a sign are
// accepted, digits are read up to the first non-digit, and text without
// digits gives 0.
func Atoi(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var n int64
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < math.MaxInt64/10 {
			n = n*10 + int64(s[i]-'0')
		}
	}
	if neg {
		return -n
	}
	return n
}

// Equal reports whether two JSON-like values are equal, comparing numbers
// by value (1 == 1.0, as Nix does).
func Equal(a, b any) bool { return equalValues(a, b, numbersEqual) }

// numbersEqual compares two numbers by value.
func numbersEqual(x, y json.Number) bool {
	if x == y {
		return true
	}
	fx, e1 := x.Float64()
	fy, e2 := y.Float64()
	return e1 == nil && e2 == nil && fx == fy
}

// equalValues compares two JSON-like values, numbers with numEq.
func equalValues(a, b any, numEq func(x, y json.Number) bool) bool {
	a, b = generic(a), generic(b)
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		return ok && numEq(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i], numEq) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValues(v, w, numEq) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// SortedKeys returns the keys of a map (a JSON-like attribute set, or any
// map keyed by names) in byte-wise order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// path joins attribute path elements for error messages ("a.b.c").
func path(elems ...string) string { return strings.Join(elems, ".") }

// generic turns the typed maps the model builds (containers, string lists)
// into their JSON-like form so they compare like any other value.
func generic(v any) any {
	switch x := v.(type) {
	case map[string]map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m
	case []string:
		return stringsToAny(x)
	}
	return v
}
