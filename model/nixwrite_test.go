package model

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dydisnix/dydisnix/internal/nixeval"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// nastyStrings are strings whose Nix quoting is easy to get wrong.
var nastyStrings = []string{
	"", `"`, `\`, `\\`, `${x}`, `$${x}`, `$`, `$$`, `x$`, `$"`, `\${`, `\$`, `$\{`, `''`, `'''`, `''${`,
	"\n", "\r\n", "\t", "a\x01b\x7f", "héllo ☃ 𝄞", "${", "}", `\n`, `"${"`, "#", "/*", "x\r", "\u2028",
	"$${${x}}", "a\"b\\c${d}e$f", "trailing $", "{ }", "[ ]", "; = ;", "'", "-1", "true", "null",
}

// nastyNames are attribute names that need quoting (or not).
var nastyNames = []string{
	"", "a.b", "x-y", "if", "or", "in", "rec", "inherit", "__curPos", "1abc", "a'b", "with space",
	"${x}", "true", "null", "_", "A", "-x", "é", "a\"b", `back\slash`, "x$", "dollar${", "let", "then",
}

func nastyValues() []any {
	var vals []any
	for _, s := range nastyStrings {
		vals = append(vals, s)
	}
	for _, n := range []string{"0", "-1", "42", "9223372036854775807", "-9223372036854775808", "1.5", "-0.5",
		"1e21", "1.0", "0.0", "5e-324", "-5e-324", "2.2250738585072014e-308", "1.7976931348623157e308",
		"123456789.123", "0.1", "1e-7", "-1e300", "100", "3.141592653589793"} {
		vals = append(vals, json.Number(n))
	}
	vals = append(vals, true, false, nil, []any{}, map[string]any{},
		[]any{json.Number("-1"), json.Number("-2.5"), "x", nil, []any{[]any{}}, map[string]any{"a": json.Number("-3")}})
	names := map[string]any{}
	for i, n := range nastyNames {
		names[n] = json.Number(fmt.Sprint(i))
	}
	vals = append(vals, names, map[string]any{"nested": map[string]any{"if": map[string]any{"x-y": []any{"${"}}}})
	return vals
}

// sameValue compares a value read back with the one written: same JSON
// types, numbers equal by value and of the same kind (int or float).
func sameValue(a, b any) bool {
	return equalValues(a, b, func(x, y json.Number) bool {
		cx, _ := CanonicalNumber(x)
		cy, _ := CanonicalNumber(y)
		return cx == cy && IsInt(x) == IsInt(y)
	})
}

// evalList writes the values as one Nix list and reads it back with the
// model reader (exact floats).
func evalList(t *testing.T, vals []any) []any {
	t.Helper()
	var b strings.Builder
	b.WriteString("[\n")
	for _, v := range vals {
		text, err := EncodeNix(v)
		if err != nil {
			t.Fatalf("EncodeNix(%#v): %v", v, err)
		}
		b.WriteString("(")
		b.Write(bytes.TrimSuffix(text, []byte("\n")))
		b.WriteString(")\n")
	}
	b.WriteString("]\n")
	file := writeFile(t, t.TempDir(), "values.nix", b.String())
	got, err := LoadValue(file, KindPlain, nil)
	if err != nil {
		t.Fatalf("evaluate what we wrote: %v\n%s", err, b.String())
	}
	list, ok := got.([]any)
	if !ok || len(list) != len(vals) {
		t.Fatalf("got %v", got)
	}
	return list
}

// nixText is EncodeNix, without the trailing newline, of a value the test
// knows to be writable.
func nixText(t testing.TB, v any) string {
	t.Helper()
	data, err := EncodeNix(v)
	if err != nil {
		t.Fatalf("EncodeNix(%#v): %v", v, err)
	}
	return strings.TrimSuffix(string(data), "\n")
}

// checkEvalBack writes the values as Nix, evaluates them with the real
// evaluator and reads them back: each must be the value written.
func checkEvalBack(t *testing.T, vals []any) {
	t.Helper()
	got := evalList(t, vals)
	for i := range vals {
		if !sameValue(vals[i], got[i]) {
			t.Errorf("%s\nevaluated back to %s, want %s", nixText(t, vals[i]), mustJSON(t, got[i]), mustJSON(t, vals[i]))
		}
	}
}

func TestNixWriterRoundTripNasty(t *testing.T) {
	t.Parallel()
	requireNix(t)
	checkEvalBack(t, nastyValues())
}

// TestNixWriterRawEvaluator checks the writer against nix-instantiate's
// own JSON output (no reader of ours involved) for values without floats,
// which nix 2.8 prints with 6 digits only.
func TestNixWriterRawEvaluator(t *testing.T) {
	t.Parallel()
	requireNix(t)
	var vals []any
	for _, v := range nastyValues() {
		if !hasFloat(v) {
			vals = append(vals, v)
		}
	}
	text := nixText(t, vals)
	out, err := nixeval.Run(context.Background(), nixeval.Command, []string{"--eval", "--strict", "--json", "--readonly-mode", "--expr", text}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var got any
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want, _ := CanonicalJSON(vals)
	gotC, _ := CanonicalJSON(got)
	if !bytes.Equal(want, gotC) {
		t.Errorf("nix-instantiate printed\n%s\nwant\n%s", gotC, want)
	}
}

func hasFloat(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return !IsInt(x)
	case []any:
		for _, e := range x {
			if hasFloat(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasFloat(e) {
				return true
			}
		}
	}
	return false
}

// randomValue builds a random JSON-like value from nasty pieces.
func randomValue(r *rand.Rand, depth int) any {
	switch k := r.Intn(10); {
	case k == 0:
		return nil
	case k == 1:
		return r.Intn(2) == 0
	case k == 2:
		return json.Number(fmt.Sprint(r.Int63() - r.Int63()))
	case k == 3:
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = r.NormFloat64()
		}
		return FloatNumber(f)
	case k <= 5:
		return randomString(r)
	case k <= 7 && depth < 4:
		n := r.Intn(4)
		l := make([]any, n)
		for i := range l {
			l[i] = randomValue(r, depth+1)
		}
		return l
	case depth < 4:
		n := r.Intn(4)
		m := make(map[string]any, n)
		for i := 0; i < n; i++ {
			m[randomString(r)] = randomValue(r, depth+1)
		}
		return m
	}
	return randomString(r)
}

func randomString(r *rand.Rand) string {
	pieces := []string{"a", "Z", "_", "-", "'", "$", "{", "}", "\\", "\"", "\n", "\r", "\t", " ", "é", "☃", "${", "''", "x1", ".", "\x01"}
	var b strings.Builder
	for n := r.Intn(6); n > 0; n-- {
		b.WriteString(pieces[r.Intn(len(pieces))])
	}
	return b.String()
}

func TestNixWriterRoundTripRandom(t *testing.T) {
	t.Parallel()
	requireNix(t)
	r := rand.New(rand.NewSource(20261123))
	vals := make([]any, 300)
	for i := range vals {
		vals[i] = randomValue(r, 0)
	}
	checkEvalBack(t, vals)
}

func TestNixNumber(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"1", "1"}, {"-1", "(-1)"}, {"1.0", "1.0"}, {"1e21", "1.0e+21"}, {"0.5", "0.5"}, {"-0.5", "(-0.5)"},
		{"1e-7", "1.0e-7"}, {"-9223372036854775808", "(-9223372036854775807 - 1)"},
		{"12345678901234567890", "12345678901234567000.0"}, {"5e-324", "(7.939328826636877e-264 / 1.6069380442589903e+60)"},
	}
	for _, c := range cases {
		got, err := NixNumber(json.Number(c.in))
		if err != nil || got != c.want {
			t.Errorf("NixNumber(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "abc", "1e999", "--1"} {
		if _, err := NixNumber(json.Number(bad)); err == nil {
			t.Errorf("NixNumber(%q): want an error", bad)
		}
	}
}

func TestDistributionNixRoundTrip(t *testing.T) {
	t.Parallel()
	requireNix(t)
	infra := Infrastructure{}
	for _, n := range []string{"t1", "x-y", "with space", "if", "${t}"} {
		infra[n] = &Target{Name: n, Properties: map[string]any{"hostname": "host-" + n}}
	}
	d := Distribution{
		"plain":      {{Target: "t1"}, {Target: "x-y"}},
		"quoted svc": {{Target: "with space"}},
		"records":    {{Target: "if", Container: "c\"${x}", Record: true}, {Target: "${t}", Record: true}},
		"empty":      {},
	}
	text := DistributionNix(d)
	golden(t, "distribution-quoting.nix", []byte(text))
	file := writeFile(t, t.TempDir(), "dist.nix", text)
	got, err := LoadDistribution(file, infra)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if mustJSON(t, got) != mustJSON(t, d) {
		t.Errorf("round trip:\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, d))
	}
}

// TestDistributionNixReference checks the exact text of the original's
// gendist output (vectors gendist-output-format and -mixed-mappings).
func TestDistributionNixReference(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d    Distribution
		want string
	}{
		{Distribution{"testService1": {{Target: "testtarget1"}}, "testService2": {{Target: "testtarget2"}}, "testService3": {{Target: "testtarget1"}}},
			"\n{infrastructure}:\n\n{\n  testService1 = [\n    infrastructure.testtarget1\n  ];\n  testService2 = [\n    infrastructure.testtarget2\n  ];\n  testService3 = [\n    infrastructure.testtarget1\n  ];\n  \n}\n\t"},
		{Distribution{"a": {{Target: "t1"}, {Target: "t2", Container: "c", Record: true}}},
			"\n{infrastructure}:\n\n{\n  a = [\n    infrastructure.t1\n  ];\n  \n}\n\t"},
		{Distribution{}, "\n{infrastructure}:\n\n{\n  \n}\n\t"},
	}
	for _, c := range cases {
		if got := DistributionNixReference(c.d); got != c.want {
			t.Errorf("got %q\nwant %q", got, c.want)
		}
	}
}

// sameModels reads the models of testdata/same.
func sameModels(t *testing.T) (Services, Infrastructure, Distribution) {
	t.Helper()
	svcs, err := LoadServices(filepath.Join("testdata", "same", "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	infra, err := LoadInfrastructure(filepath.Join("testdata", "same", "infrastructure.json"))
	if err != nil {
		t.Fatal(err)
	}
	dist, err := LoadDistribution(filepath.Join("testdata", "same", "distribution.json"), infra)
	if err != nil {
		t.Fatal(err)
	}
	return svcs, infra, dist
}

func TestWriterGoldens(t *testing.T) {
	t.Parallel()
	svcs, infra, dist := sameModels(t)
	for _, c := range []struct {
		name string
		v    any
	}{{"services", svcs}, {"infrastructure", infra}, {"distribution", dist}} {
		for _, f := range []Format{FormatJSON, FormatYAML, FormatNix} {
			data, err := Encode(c.v, f)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+"."+string(f), data)
		}
	}
}

// TestWrittenFilesReadBack writes every model in every format and reads it
// back with the loaders (the Nix ones with the real evaluator).
func TestWrittenFilesReadBack(t *testing.T) {
	t.Parallel()
	requireNix(t)
	dir := t.TempDir()
	svcs, infra, dist := sameModels(t)
	for _, ext := range []string{"json", "yaml", "nix"} {
		sf, inf, df := filepath.Join(dir, "s."+ext), filepath.Join(dir, "i."+ext), filepath.Join(dir, "d."+ext)
		for file, v := range map[string]any{sf: svcs, inf: infra, df: dist} {
			if err := WriteModelFile(file, v, ""); err != nil {
				t.Fatal(err)
			}
		}
		s2, err := LoadServices(sf)
		if err != nil {
			t.Fatal(err)
		}
		i2, err := LoadInfrastructure(inf)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := LoadDistribution(df, i2)
		if err != nil {
			t.Fatal(err)
		}
		wantDist := dist
		if ext == "nix" {
			// The Disnix targets form has records only: a plain name in a
			// service that also has records is written as { target = ...; }.
			wantDist = dist.Clone()
			for svc, ms := range wantDist {
				for _, m := range ms {
					if m.Record {
						for i := range ms {
							wantDist[svc][i].Record = true
						}
						break
					}
				}
			}
		}
		if s2.Hash() != svcs.Hash() || i2.Hash() != infra.Hash() || d2.Hash() != wantDist.Hash() {
			t.Errorf("%s: read back differs:\n%s%s%s", ext, mustJSON(t, s2), mustJSON(t, i2), mustJSON(t, d2))
		}
	}
}

// TestYAMLWriterRoundTrip: what EncodeYAML writes reads back as the same
// value (strings that look like numbers, bools or null stay strings).
func TestYAMLWriterRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewSource(7))
	vals := nastyValues()
	for i := 0; i < 300; i++ {
		vals = append(vals, randomValue(r, 0))
	}
	vals = append(vals, "1", "1.5", "yes", "no", "on", "~", "null", "true", "0x10", "1e3", ".inf", "2001-12-14", "- x", "a: b", "#c", "&a", "*a", "!t", "|", ">", "%", "@", "`")
	for _, v := range vals {
		if s, ok := v.(string); ok && !utf8.ValidString(s) {
			continue
		}
		data, err := EncodeYAML(v)
		if err != nil {
			t.Fatalf("EncodeYAML(%#v): %v", v, err)
		}
		back, err := DecodeValue(data, FormatYAML, "v.yaml")
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if !sameValue(v, back) {
			t.Errorf("%q read back as %s, want %s", data, mustJSON(t, back), mustJSON(t, v))
		}
	}
}

// TestWriteModelFileKeepsOldOnError: a value that cannot be written leaves
// the existing file untouched and no temporary file behind.
func TestWriteModelFileKeepsOldOnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "ids.nix")
	if err := WriteModelFile(file, map[string]any{"a": json.Number("1")}, ""); err != nil {
		t.Fatal(err)
	}
	if err := WriteModelFile(file, map[string]any{"a": "nul\x00"}, ""); err == nil || !strings.Contains(err.Error(), "ids.nix") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
	data, _ := os.ReadFile(file)
	if string(data) != "{\n  a = 1;\n}\n" {
		t.Errorf("file changed: %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteModelFile(filepath.Join(dir, "x.txt"), 1, ""); err == nil {
		t.Error("want an error for an unknown extension")
	}
}
