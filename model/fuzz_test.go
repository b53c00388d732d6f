package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seed corpora: the models in testdata plus hand-picked awkward inputs. The
// plain `go test` run exercises every fuzz target with these seeds.

func seedFiles(f *testing.F, exts ...string) {
	f.Helper()
	for _, dir := range []string{filepath.Join("testdata", "same"), filepath.Join("testdata", "golden")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			for _, ext := range exts {
				if strings.HasSuffix(e.Name(), "."+ext) {
					data, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						f.Fatal(err)
					}
					f.Add(data)
				}
			}
		}
	}
}

var jsonSeeds = []string{
	``, `{`, `}`, `null`, `[]`, `{}`, `1e999`, `-0`, `{"a":1}{"b":2}`, `{"a":{"name":"a","dependsOn":{"x":{"name":"y"}}}}`,
	`{"a":{"dependsOn":[{"name":1}]}}`, `{"s":[{"target":"t","container":null}]}`, `{"t":{"properties":null,"containers":{"c":null}}}`,
	`{"a":"\u0000\ud800"}`, `[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`, `{"a":1.0000000000000000000001}`, "\xff\xfe",
	`{"a":{"name":"a","dependsOn":["a"],"deployState":"x","providesContainers":{"c":[]}}}`,
}

var yamlSeeds = []string{
	"", "~", "a: b", "a: &x [*x]", "- a\n- b", "a: !!binary aGVsbG8=", "a: 2001-12-14", "? [a]\n: b",
	"<<: {a: 1}", "a: .nan", "a: 0x1F", "a: 1e400", "a: !!int 99999999999999999999", "---\n---\n",
	"a: &a {b: *a}", "t1:\n  properties: {hostname: t1, mem: 1.5}\n  containers: {c: ~}", "\t", "a: '\x00'",
}

// checkValue runs everything a decoded value goes through and checks the
// invariants: no panic, errors name the file, JSON written reads back the
// same, hashing is stable.
func checkValue(t *testing.T, v any, file string) {
	t.Helper()
	checkErr := func(err error) {
		if err != nil && !strings.Contains(err.Error(), file) {
			t.Fatalf("error does not name the file %s: %v", file, err)
		}
	}
	if s, err := ServicesFromValue(v, file); err == nil {
		checkErr(s.Validate(file))
		checkRoundTrip(t, s)
	} else {
		checkErr(err)
	}
	infra, err := InfrastructureFromValue(v, file)
	if err == nil {
		checkErr(infra.Validate(file))
		checkRoundTrip(t, infra)
	} else {
		checkErr(err)
	}
	if d, err := DistributionFromValue(v, file); err == nil {
		checkErr(d.Validate(file, nil, infra))
		checkRoundTrip(t, d)
		_ = DistributionNix(d)
		_ = DistributionNixReference(d)
	} else {
		checkErr(err)
	}
	checkRoundTrip(t, v)
	_, _ = EncodeNix(v) // may refuse a NUL byte, must not panic
	if _, err := EncodeYAML(v); err != nil {
		t.Fatalf("EncodeYAML of a decoded value: %v", err)
	}
}

// checkRoundTrip: EncodeJSON output decodes to a value with the same hash.
func checkRoundTrip(t *testing.T, v any) {
	t.Helper()
	data, err := EncodeJSON(v)
	if err != nil {
		t.Fatalf("EncodeJSON of a decoded value: %v", err)
	}
	back, err := DecodeValue(data, FormatJSON, "roundtrip.json")
	if err != nil {
		t.Fatalf("our JSON does not decode: %v\n%s", err, data)
	}
	if Hash(back) != Hash(v) {
		t.Fatalf("hash changed through EncodeJSON:\n%s", data)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	seedFiles(f, "json")
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeValue(data, FormatJSON, "fuzz.json")
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || me.File != "fuzz.json" {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		checkValue(t, v, "fuzz.json")
	})
}

func FuzzDecodeYAML(f *testing.F) {
	seedFiles(f, "yaml")
	for _, s := range yamlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeValue(data, FormatYAML, "fuzz.yaml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		checkValue(t, v, "fuzz.yaml")
	})
}

// FuzzServicesFromValue builds services from JSON-ish input and checks the
// services invariants: a valid model's dependsOn graph has no cycle and
// every link names a known service.
func FuzzServicesFromValue(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a":{"dependsOn":["b"]},"b":{"dependsOn":["c"]},"c":{"dependsOn":["a","b"]}}`))
	f.Add([]byte(`{"a":{"name":"a","connectsTo":["a"]},"b":{"name":"b","dependsOn":["a","a"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeValue(data, FormatJSON, "s.json")
		if err != nil {
			return
		}
		s, err := ServicesFromValue(v, "s.json")
		if err != nil {
			return
		}
		err = s.Validate("s.json")
		if err == nil {
			if c := dependsOnCycles(s, s.Names()); len(c) > 0 {
				t.Fatalf("valid model with a cycle %v", c)
			}
			for _, svc := range s {
				for _, d := range svc.Inter() {
					if s[d] == nil {
						t.Fatalf("valid model with unknown link %q", d)
					}
				}
			}
		}
		for _, c := range dependsOnCycles(s, s.Names()) {
			if len(c) < 2 || c[0] != c[len(c)-1] {
				t.Fatalf("bad cycle %v", c)
			}
			for i := 0; i+1 < len(c); i++ {
				if !slices.Contains(s[c[i]].DependsOn, c[i+1]) {
					t.Fatalf("cycle %v: %s does not depend on %s", c, c[i], c[i+1])
				}
			}
		}
	})
}

// FuzzNixString checks the Nix string quoting against a model of the Nix
// lexer's string rules (the real evaluator is checked in nixwrite_test.go).
func FuzzNixString(f *testing.F) {
	for _, s := range nastyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := NixString(s)
		if err != nil {
			if strings.IndexByte(s, 0) < 0 {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		got, ok := unquoteNix(q)
		if !ok || got != s {
			t.Fatalf("NixString(%q) = %s, which Nix reads as %q", s, q, got)
		}
		if !utf8.ValidString(s) {
			return
		}
		name, _ := NixAttrName(s)
		if name != q && !IsNixIdent(name) {
			t.Fatalf("attribute name %q written as %s", s, name)
		}
	})
}

// unquoteNix reads a "..." Nix string literal as the Nix 2.x lexer does; ok
// is false when the literal would contain an interpolation or end early.
func unquoteNix(q string) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	body := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"':
			return "", false // the string would end here
		case c == '\\':
			if i+1 >= len(body) {
				return "", false
			}
			i++
			switch body[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(body[i])
			}
		case c == '$' && i+1 < len(body) && body[i+1] == '$':
			// "$$" is two literal dollars; a following "{" is literal too.
			b.WriteString("$$")
			i++
		case c == '$' && i+1 < len(body) && body[i+1] == '{':
			return "", false // an interpolation
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// FuzzNixNumber: every JSON number either is refused or written as a Nix
// literal whose value (as Go reads it) equals the number.
func FuzzNixNumber(f *testing.F) {
	for _, s := range []string{"0", "-1", "1.5", "1e21", "5e-324", "9223372036854775808", "-9223372036854775808", "1e309", "0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit, err := NixNumber(json.Number(s))
		if err != nil {
			return
		}
		if !validNumber(s) {
			t.Fatalf("accepted invalid number %q", s)
		}
		if strings.Contains(lit, "/") {
			return // subnormal: checked with the evaluator
		}
		text := strings.TrimSuffix(strings.TrimPrefix(lit, "("), ")")
		if strings.Contains(text, " - 1") {
			return // math.MinInt64
		}
		if !Equal(json.Number(text), json.Number(s)) {
			t.Fatalf("NixNumber(%s) = %s", s, lit)
		}
	})
}

func TestFuzzSeedsAreValid(t *testing.T) {
	t.Parallel()
	// The golden JSON written by the writers must itself decode cleanly.
	entries, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if len(entries) == 0 {
		t.Fatal("no golden JSON files")
	}
	for _, e := range entries {
		data, _ := os.ReadFile(e)
		if _, err := DecodeValue(data, FormatJSON, e); err != nil {
			t.Errorf("%s: %v", e, err)
		}
		if !bytes.HasSuffix(data, []byte("\n")) {
			t.Errorf("%s: no trailing newline", e)
		}
	}
}

// FuzzNixRoundTrip writes a decoded JSON value as Nix and evaluates it
// back with the real nix-instantiate and the model reader. Each input
// costs one evaluation, so run it with a small -parallel.
func FuzzNixRoundTrip(f *testing.F) {
	requireNix(f)
	for _, s := range []string{
		`{"a":"${x}","b":[-1,1.5,1e21,"$${"],"if":{"":null}}`,
		`["\\", "\"", "''", "\n\r\t", 5e-324, -9223372036854775808]`,
		`{"__curPos":1,"or":true,"x-y":"a$","1a":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeValue(data, FormatJSON, "in.json")
		if err != nil || hasOutPath(v) {
			return
		}
		text, err := EncodeNix(v)
		if err != nil {
			return // a NUL byte
		}
		file := filepath.Join(t.TempDir(), "v.nix")
		if err := os.WriteFile(file, text, 0o644); err != nil {
			t.Fatal(err)
		}
		back, err := LoadValue(file, KindPlain, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		if !sameValue(bigIntsAsFloats(v), back) {
			t.Fatalf("%s evaluated back to %s", text, mustJSON(t, back))
		}
	})
}

// hasOutPath reports an attribute set with an outPath attribute, which nix
// prints as that value (a documented limit).
func hasOutPath(v any) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if hasOutPath(e) {
				return true
			}
		}
	case map[string]any:
		if _, ok := x["outPath"]; ok {
			return true
		}
		for _, e := range x {
			if hasOutPath(e) {
				return true
			}
		}
	}
	return false
}

// bigIntsAsFloats turns integers beyond 64 bits into floats, as Nix does.
func bigIntsAsFloats(v any) any {
	switch x := v.(type) {
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err != nil && isIntText(string(x)) {
			f, _ := x.Float64()
			return FloatNumber(f)
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = bigIntsAsFloats(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = bigIntsAsFloats(e)
		}
		return out
	}
	return v
}

// isIntText reports whether a JSON number is written without a fraction
// or exponent.
func isIntText(s string) bool { return !strings.ContainsAny(s, ".eE") }

// FuzzUnmark: the decoder of the evaluator's markers never panics on
// malformed markers and reports them with the file.
func FuzzUnmark(f *testing.F) {
	for _, s := range []string{
		`{"__dydisnix_float":[3,-1]}`, `{"__dydisnix_float":"x"}`, `{"__dydisnix_float":[1]}`,
		`{"__dydisnix_target":{"property":"hostname","present":true,"value":"h"}}`, `{"__dydisnix_target":null}`,
		`[{"a":{"__dydisnix_function":true}},{"__dydisnix_derivation":"d"}]`, `{"__dydisnix_nonfinite":true,"x":1}`,
		`{"__dydisnix_float":[9007199254740991,971]}`, `{"__dydisnix_float":[1,-1200]}`,
	} {
		f.Add([]byte(s))
	}
	table := targetTable(Infrastructure{"t": {Name: "t", Properties: map[string]any{"hostname": "h"}}}, "hostname")
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeValue(data, FormatJSON, "x.json")
		if err != nil {
			return
		}
		var errs []error
		out := unmark(v, "m.nix", nil, table, &errs)
		for _, e := range errs {
			if !strings.Contains(e.Error(), "m.nix") {
				t.Fatalf("error without the file: %v", e)
			}
		}
		if len(errs) == 0 {
			if _, err := EncodeJSON(out); err != nil {
				t.Fatalf("unmarked value does not encode: %v", err)
			}
		}
	})
}
