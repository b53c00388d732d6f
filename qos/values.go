package qos

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// valueKey renders a JSON-like value to a string such that two values have
// the same key exactly when Nix's == says they are equal: numbers compare by
// value (1 == 1.0), a string never equals a number, lists and attribute sets
// compare structurally. The Nix-style filters intern these keys so that a
// membership test is an integer comparison, not a deep comparison.
func valueKey(v any) string {
	var b strings.Builder
	writeValueKey(&b, v)
	return b.String()
}

func writeValueKey(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("z")
	case bool:
		if x {
			b.WriteString("bt")
		} else {
			b.WriteString("bf")
		}
	case string:
		b.WriteString("s")
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.WriteString(x)
	case json.Number:
		b.WriteString("n")
		b.WriteString(numberKey(x))
		b.WriteByte(';')
	case []any:
		b.WriteString("l")
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte('[')
		for _, e := range x {
			writeValueKey(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := model.SortedKeys(x)
		b.WriteString("a")
		b.WriteString(strconv.Itoa(len(keys)))
		b.WriteByte('{')
		for _, k := range keys {
			b.WriteString(strconv.Itoa(len(k)))
			b.WriteByte(':')
			b.WriteString(k)
			writeValueKey(b, x[k])
		}
		b.WriteByte('}')
	default:
		fmt.Fprintf(b, "?%T%v", v, v)
	}
}

func numberKey(n json.Number) string {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	f, err := n.Float64()
	if err != nil {
		return string(n)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// ValueIDs numbers JSON-like values by Nix equality: two values get the
// same id exactly when Nix's == says they are equal (1 == 1.0, "1" != 1,
// lists and attribute sets structurally). Ids start at 1, so 0 never names
// a value. A predicate compares ids instead of values, and a value's id
// makes a good ServiceCheck.Class. The zero value is ready to use.
type ValueIDs struct {
	strs map[string]int32 // strings, by themselves
	ids  map[string]int32 // every other value, by its valueKey
	n    int32
}

// ID returns the id of v, numbering it when new.
func (k *ValueIDs) ID(v any) int32 {
	table, key := &k.ids, ""
	if s, ok := v.(string); ok {
		// A string only equals the same string: no key to build.
		table, key = &k.strs, s
	} else {
		key = valueKey(v)
	}
	if i, ok := (*table)[key]; ok {
		return i
	}
	if *table == nil {
		*table = map[string]int32{}
	}
	k.n++
	(*table)[key] = k.n
	return k.n
}

// show renders a value for explanations and errors: compact JSON, with
// strings quoted.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// nixKind names a value's type as Nix error messages do.
func nixKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a Boolean"
	case json.Number:
		if model.IsInt(x) {
			return "an integer"
		}
		return "a float"
	case []any:
		return "a list"
	case map[string]any:
		return "a set"
	}
	return model.TypeName(v)
}

// nixLess is Nix's builtins.lessThan: numbers compare numerically, strings
// byte-wise, lists lexicographically; any other combination is an error.
func nixLess(a, b any) (bool, error) {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			break
		}
		if model.IsInt(x) && model.IsInt(y) {
			i, _ := strconv.ParseInt(string(x), 10, 64)
			j, _ := strconv.ParseInt(string(y), 10, 64)
			return i < j, nil
		}
		fx, e1 := x.Float64()
		fy, e2 := y.Float64()
		if e1 != nil || e2 != nil {
			return false, fmt.Errorf("cannot compare %s with %s", x, y)
		}
		return fx < fy, nil
	case string:
		y, ok := b.(string)
		if !ok {
			break
		}
		return x < y, nil
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		for i := 0; i < len(x) && i < len(y); i++ {
			lt, err := nixLess(x[i], y[i])
			if err != nil {
				return false, err
			}
			if lt {
				return true, nil
			}
			gt, err := nixLess(y[i], x[i])
			if err != nil {
				return false, err
			}
			if gt {
				return false, nil
			}
		}
		return len(x) < len(y), nil
	}
	return false, fmt.Errorf("cannot compare %s with %s", nixKind(a), nixKind(b))
}
