package model

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestHashAcrossFormats: the same model written as JSON, YAML and Nix (in
// different key orders and number spellings) hashes alike.
func TestHashAcrossFormats(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := filepath.Join("testdata", "same")
	hashes := map[string]map[string]string{}
	for _, ext := range []string{"json", "yaml", "nix"} {
		s, err := LoadServices(filepath.Join(dir, "services."+ext))
		if err != nil {
			t.Fatal(err)
		}
		i, err := LoadInfrastructure(filepath.Join(dir, "infrastructure."+ext))
		if err != nil {
			t.Fatal(err)
		}
		d, err := LoadDistribution(filepath.Join(dir, "distribution."+ext), i)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate("services." + ext); err != nil {
			t.Errorf("services.%s: %v", ext, err)
		}
		hashes[ext] = map[string]string{"services": s.Hash(), "infrastructure": i.Hash(), "distribution": d.Hash()}
	}
	for _, model := range []string{"services", "infrastructure", "distribution"} {
		if hashes["json"][model] != hashes["yaml"][model] || hashes["json"][model] != hashes["nix"][model] {
			t.Errorf("%s hashes differ: json %s yaml %s nix %s", model, hashes["json"][model], hashes["yaml"][model], hashes["nix"][model])
		}
	}
}

func TestHashKeyOrderAndNumbers(t *testing.T) {
	t.Parallel()
	decode := func(text string) any {
		v, err := DecodeValue([]byte(text), FormatJSON, "x.json")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	same := [][2]string{
		{`{"a":1,"b":{"c":[1,2],"d":"x"}}`, `{"b":{"d":"x","c":[1,2]},"a":1}`},
		{`{"n":1}`, `{"n":1.0}`},
		{`{"n":1000}`, `{"n":1e3}`},
		{`{"n":0.1}`, `{"n":0.10}`},
		{`{"n":-0}`, `{"n":0}`},
		{`{"n":1e400}`, `{"n":1e400}`},
	}
	for _, c := range same {
		if Hash(decode(c[0])) != Hash(decode(c[1])) {
			t.Errorf("%s and %s should hash alike", c[0], c[1])
		}
	}
	different := [][2]string{
		{`{"n":1}`, `{"n":"1"}`},
		{`{"n":[]}`, `{"n":{}}`},
		{`{"n":null}`, `{}`},
		{`{"n":true}`, `{"n":"true"}`},
		{`["a","b"]`, `["b","a"]`},
		{`{"n":0.1}`, `{"n":0.1000000000000001}`},
	}
	for _, c := range different {
		if Hash(decode(c[0])) == Hash(decode(c[1])) {
			t.Errorf("%s and %s should hash differently", c[0], c[1])
		}
	}
	if h := Hash(decode(`{"a":1}`)); len(h) != 64 {
		t.Errorf("hash %q is not hex sha256", h)
	}
}

func TestCanonicalNumber(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"1": "1", "1.0": "1", "-1.50": "-1.5", "1e3": "1000", "1E+3": "1000", "0.1": "0.1",
		"1e21": "1e+21", "1e-7": "1e-7", "123456789.123": "123456789.123", "-0.0": "0",
		"9223372036854775807": "9223372036854775807", "9223372036854775808": "9223372036854776000", // beyond int64: a float, as in Nix
		"1e400": "1e400",
	}
	for in, want := range cases {
		got, err := CanonicalNumber(json.Number(in))
		if err != nil || got != want {
			t.Errorf("CanonicalNumber(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := CanonicalNumber("x"); err == nil {
		t.Error("want an error for an invalid number")
	}
}

func TestEncodeJSON(t *testing.T) {
	t.Parallel()
	v := map[string]any{"b": []any{}, "a": map[string]any{}, "<html>": "a&b<c>\u2028\x01", "n": json.Number("1.0"), "bad": "\xff"}
	got, err := EncodeJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"<html>\": \"a&b<c>\u2028\\u0001\",\n  \"a\": {},\n  \"b\": [],\n  \"bad\": \"\\ufffd\",\n  \"n\": 1.0\n}\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var back any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Errorf("not valid JSON: %v", err)
	}
	if _, err := EncodeJSON(map[string]any{"n": json.Number("NaN")}); err == nil {
		t.Error("want an error for an invalid number")
	}
}

func TestToValue(t *testing.T) {
	t.Parallel()
	type custom struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	cases := []struct {
		in   any
		want string
	}{
		{Distribution{"s": {{Target: "t"}, {Target: "u", Container: "c", Record: true}}}, `{"s":["t",{"container":"c","target":"u"}]}`},
		{[]string{"a"}, `["a"]`},
		{map[string][]string{"a": {"b"}}, `{"a":["b"]}`},
		{custom{A: 1, B: "x"}, `{"a":1,"b":"x"}`},
		{&custom{A: 2}, `{"a":2,"b":""}`},
		{(*custom)(nil), `null`},
		{3, `3`},
		{2.5, `2.5`},
		{Services{"a": {Name: "a", Type: "process", DependsOn: []string{"b"}, HasDependsOn: true, Attrs: map[string]any{"x": 1}}},
			`{"a":{"dependsOn":["b"],"name":"a","type":"process","x":1}}`},
	}
	for _, c := range cases {
		got, err := CanonicalJSON(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("CanonicalJSON(%#v) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	if _, err := ToValue(make(chan int)); err == nil || !strings.Contains(err.Error(), "chan int") {
		t.Errorf("want an error naming the type, got %v", err)
	}
}
