package model

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sameAsSlow checks that decodeJSON (fast path first) gives exactly what
// the encoding/json path gives: the same value, or the same error.
func sameAsSlow(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := decodeJSON(data, "x.json")
	want, wantErr := decodeJSONSlow(data, "x.json")
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("%q: error %v, the slow path says %v", data, gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		t.Fatalf("%q: error %q, the slow path says %q", data, gotErr, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%q: value %#v, the slow path gives %#v", data, got, want)
	}
	if v, ok := decodeJSONFast(data); ok && (wantErr != nil || !reflect.DeepEqual(v, want)) {
		t.Fatalf("%q: the fast path accepted %#v, the slow path gives %#v, %v", data, v, want, wantErr)
	}
}

func TestDecodeJSONFastMatchesSlow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		fast bool // whether the fast path decodes it itself
	}{
		{"object", `{"a": 1, "b": [true, false, null], "c": {"d": "e"}}`, true},
		{"numbers", `[0, -0, 1.5, -2e10, 3E+2, 4e-3, 12345678901234567890123, 1.0]`, true},
		{"empty containers", `{"a": {}, "b": []}`, true},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", true},
		{"escapes", `{"a\nb": "c\"d\\e\u00e9\ud83d\ude00\/"}`, true},
		{"utf-8", `{"é": "ü€😀"}`, true},
		{"long strings", `["` + strings.Repeat("x", 100) + `", "` + strings.Repeat("y", 100) + `"]`, true},
		{"invalid utf-8 in a string", "[\"a\xffb\"]", false}, // an error naming the place
		{"duplicate key", `{"a": 1, "a": 2}`, false},
		{"duplicate key after unescaping", `{"a": 1, "\u0061": 2}`, false},
		{"duplicate invalid utf-8 keys", "{\"\xff\": 1, \"\xfe\": 2}", false},
		{"nested duplicate", `{"x": [{"a": 1, "b": 2, "a": 3}]}`, false},
		{"trailing comma", `{"a": 1,}`, false},
		{"trailing data", `{"a": 1} x`, false},
		{"two values", `1 2`, false},
		{"leading zero", `[01]`, false},
		{"bare minus", `[-]`, false},
		{"dot without digits", `[1.]`, false},
		{"exponent without digits", `[1e]`, false},
		{"control character", "[\"a\x01\"]", false},
		{"bad escape", `["\x"]`, false},
		{"truncated", `{"a": [1, 2`, false},
		{"empty", ``, false},
		{"only space", `   `, false},
		{"bom", "\xef\xbb\xbf{}", false},
		{"bad literal", `[tru]`, false},
		{"single quotes", `{'a': 1}`, false},
		{"too deep", strings.Repeat("[", 10001) + strings.Repeat("]", 10001), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sameAsSlow(t, []byte(c.in))
			if _, ok := decodeJSONFast([]byte(c.in)); ok != c.fast {
				t.Fatalf("fast path decoded it: %v, want %v", ok, c.fast)
			}
		})
	}
}

func FuzzDecodeJSONFast(f *testing.F) {
	seedFiles(f, "json")
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsSlow(t, data) })
}

// sameServicesAsSlow checks that decodeServicesJSON gives what the general
// way gives: encoding/json, then ServicesFromValue.
// It reads the model in one, two and three parts at once.
func sameServicesAsSlow(t *testing.T, data []byte) {
	t.Helper()
	var want Services
	v, wantErr := decodeJSONSlow(data, "s.json")
	if wantErr == nil {
		want, wantErr = ServicesFromValue(v, "s.json")
	}
	for parts := 1; parts <= 3; parts++ {
		got, gotErr := decodeServicesJSONParts(data, "s.json", parts)
		switch {
		case (gotErr == nil) != (wantErr == nil):
			t.Fatalf("%q in %d parts: error %v, the general way says %v", data, parts, gotErr, wantErr)
		case gotErr != nil && gotErr.Error() != wantErr.Error():
			t.Fatalf("%q in %d parts: error %q, the general way says %q", data, parts, gotErr, wantErr)
		case !reflect.DeepEqual(got, want):
			t.Fatalf("%q in %d parts: services %#v, the general way gives %#v", data, parts, got, want)
		}
	}
}

func TestDecodeServicesJSONMatchesGeneral(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"services":           `{"a": {"name": "a", "type": "process", "dependsOn": ["b"], "connectsTo": {"x": "b"}, "mem": 3}, "b": {"stateful": true}}`,
		"empty":              `{}`,
		"repeated service":   `{"a": {}, "a": {}}`,
		"repeated attribute": `{"a": {"name": "a", "name": "b"}}`,
		"not a set":          `{"a": 1, "b": {"name": 2}}`,
		"ill-typed":          `{"a": {"type": 3, "dependsOn": 4}}`,
		"not an object":      `[{"a": {}}]`,
		"invalid":            `{"a": {}`,
		"trailing data":      `{"a": {}} {}`,
		"nested objects":     `{"a": {"providesContainers": {"c": {"x": 1}}, "dependsOn": {"k": {"name": "b"}}}, "b": {}}`,
		"commas in strings":  `{"a,": {"d": "x\",{[", "e": ["]", "\\"]}, "b": {"f": ","}, "c": {}, "d": {"g": [1, {"h": ","}]}}`,
		"repeated in halves": `{"a": {}, "b": {}, "c": {}, "a": {}}`,
		"trailing comma":     `{"a": {}, "b": {},}`,
		"empty member":       `{"a": {}, , "b": {}}`,
		"spaces":             " \n{ \"a\" : { } ,\n \"b\" :{\"x\":1} }\n ",
	} {
		t.Run(name, func(t *testing.T) { sameServicesAsSlow(t, []byte(in)) })
	}
}

func FuzzDecodeServicesJSON(f *testing.F) {
	seedFiles(f, "json")
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameServicesAsSlow(t, data) })
}

// The members of a large object are read in parts: every part gets some,
// none is lost or read twice, and commas inside strings or nested values
// never split it.
func TestDecodeObjectMembersParts(t *testing.T) {
	t.Parallel()
	data := []byte(`{"a": {"s": "x,y\",{"}, "b": [1, 2, {"c": ","}], "c": "\\\\", "d": {}, "e": "e", "f": 6}`)
	var mu sync.Mutex
	got := map[string]int{}
	ok := decodeObjectMembers(data, 3, func(part int, key string, _ any) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, twice := got[key]; twice {
			t.Errorf("member %s read twice", key)
		}
		got[key] = part
		return true
	})
	if !ok {
		t.Fatal("the fast path gave up on valid JSON")
	}
	// in document order, the parts follow each other: 0…, 1…, 2…
	last, used := 0, map[int]bool{}
	for _, key := range []string{"a", "b", "c", "d", "e", "f"} {
		part, ok := got[key]
		if !ok || part < last {
			t.Fatalf("members by part %v: %s missing or out of order", got, key)
		}
		last, used[part] = part, true
	}
	if len(used) != 3 {
		t.Fatalf("members by part %v: want three parts", got)
	}
}

// A part boundary far past the middle leaves no empty part behind it.
func TestDecodeObjectMembersFewMembers(t *testing.T) {
	t.Parallel()
	data := []byte(`{"a": {"long": "` + strings.Repeat("x", 100) + `"}, "b": {}}`)
	var mu sync.Mutex
	var got []string
	ok := decodeObjectMembers(data, 4, func(_ int, key string, _ any) bool {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, key)
		return true
	})
	if slices.Sort(got); !ok || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("ok %v, members %v", ok, got)
	}
}
