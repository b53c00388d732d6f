package discovery

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

func mustTarget(t testing.TB, name string, v any) *model.Target {
	t.Helper()
	n, err := model.Normalize(v)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := model.TargetFromValue(name, n, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(tg.Containers) == 0 {
		tg.Containers = nil
	}
	return tg
}

// The TXT strings of the original publisher (mdns.md) parse into the target
// the original client would have produced.
func TestParseTXTOriginalFormat(t *testing.T) {
	t.Parallel()
	txt := []string{
		`properties."hostname"="machine1"`,
		`properties."mem"="377648"`,
		`properties."supportedTypes"=[ "process" "wrapper" ]`,
		`containers.mysql-database."mysqlPort"="3306"`,
		`"system"="x86_64-linux"`,
	}
	ann, warns, err := ParseTXT(txt, "")
	if err != nil || len(warns) > 0 {
		t.Fatalf("ParseTXT: %v %v", err, warns)
	}
	want := mustTarget(t, "machine1", map[string]any{
		"properties": map[string]any{"hostname": "machine1", "mem": "377648", "supportedTypes": []any{"process", "wrapper"}},
		"containers": map[string]any{"mysql-database": map[string]any{"mysqlPort": "3306"}},
		"system":     "x86_64-linux",
	})
	if ann.Target.Name != "machine1" || !TargetEqual(ann.Target, want) {
		got, _ := json.Marshal(ann.Target)
		t.Fatalf("got %s", got)
	}
	if ann.Version != "" || ann.Hash != "" || ann.Compact {
		t.Fatalf("unexpected meta %+v", ann)
	}
}

func TestEncodeTXTRoundTrip(t *testing.T) {
	t.Parallel()
	key := NewHMACKey([]byte("0123456789abcdef0123"))
	cases := []struct {
		name string
		v    map[string]any
	}{
		{"plain", map[string]any{"properties": map[string]any{"hostname": "test1", "mem": 1024, "zone": "eu", "ok": true}}},
		{"lists and containers", map[string]any{
			"properties": map[string]any{"hostname": "test2", "supportedTypes": []any{"process", "wrapper"}, "neg": -3, "pi": 3.25},
			"containers": map[string]any{"mysql-database": map[string]any{"mysqlPort": "3306"}, "empty": map[string]any{}, "odd name": map[string]any{"k": "v"}},
			"system":     "x86_64-linux",
		}},
		{"awkward strings", map[string]any{"properties": map[string]any{"hostname": "test3", "q": `a "quoted" \ back ${x} $y`, "nl": "a\nb\tc", "attrs": map[string]any{"x": 1, "y z": []any{}}, "nothing": nil}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tg := mustTarget(t, c.v["properties"].(map[string]any)["hostname"].(string), c.v)
			n, err := NormalizeTarget(tg)
			if err != nil {
				t.Fatal(err)
			}
			txt, compact, err := EncodeTXT(n, EncodeOptions{Endpoint: "http://10.0.0.2:9001", Signer: key})
			if err != nil || compact {
				t.Fatalf("EncodeTXT: %v compact=%v", err, compact)
			}
			if txt[0] != "txtvers=1" {
				t.Fatalf("txtvers must come first: %q", txt)
			}
			// Through the wire escaping of miekg/dns and back.
			for i := range txt {
				txt[i] = txtFromWire(strings.ReplaceAll(txtToWire(txt[i]), `"`, `\"`))
			}
			ann, warns, err := ParseTXT(txt, "")
			if err != nil || len(warns) > 0 {
				t.Fatalf("ParseTXT: %v %v\n%q", err, warns, txt)
			}
			if err := ann.Verify(ann.Target, key); err != nil {
				t.Fatalf("Verify: %v\n%q", err, txt)
			}
			if !TargetEqual(ann.Target, n) {
				a, _ := json.Marshal(ann.Target)
				b, _ := json.Marshal(n)
				t.Fatalf("round trip:\n got %s\nwant %s", a, b)
			}
			if ann.Endpoint != "http://10.0.0.2:9001" {
				t.Fatalf("endpoint %q", ann.Endpoint)
			}
		})
	}
}

func TestEncodeTXTCompact(t *testing.T) {
	t.Parallel()
	props := map[string]any{"hostname": "big"}
	for i := 0; i < 40; i++ {
		props["p"+strings.Repeat("x", i)] = strings.Repeat("v", 30)
	}
	tg, _ := NormalizeTarget(mustTarget(t, "big", map[string]any{"properties": props}))
	if _, _, err := EncodeTXT(tg, EncodeOptions{}); err != ErrTooLarge {
		t.Fatalf("without endpoint: got %v, want ErrTooLarge", err)
	}
	txt, compact, err := EncodeTXT(tg, EncodeOptions{Endpoint: "http://10.0.0.9:9001"})
	if err != nil || !compact {
		t.Fatalf("got %v compact=%v", err, compact)
	}
	total := 0
	for _, s := range txt {
		total += 1 + len(s)
	}
	if total > MaxTXTRecord {
		t.Fatalf("compact record is %d bytes", total)
	}
	ann, _, err := ParseTXT(txt, "")
	if err != nil || !ann.Compact || ann.Target.Name != "big" {
		t.Fatalf("compact parse: %v %+v", err, ann)
	}
	if err := ann.Verify(tg, nil); err != nil {
		t.Fatalf("full target must match the hash: %v", err)
	}
	other, _ := NormalizeTarget(mustTarget(t, "big", map[string]any{"properties": map[string]any{"hostname": "big"}}))
	if err := ann.Verify(other, nil); err == nil {
		t.Fatal("a different target must not match the hash")
	}
	// A single string over 255 bytes also forces compact mode.
	long, _ := NormalizeTarget(mustTarget(t, "l", map[string]any{"properties": map[string]any{"hostname": "l", "x": strings.Repeat("y", 300)}}))
	if _, compact, err := EncodeTXT(long, EncodeOptions{Endpoint: "http://a:1"}); err != nil || !compact {
		t.Fatalf("long string: %v compact=%v", err, compact)
	}
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	hm := NewHMACKey([]byte("0123456789abcdef0123"))
	other := NewHMACKey([]byte("another-secret-of-16+"))
	_, priv, _ := ed25519.GenerateKey(nil)
	ed := NewEd25519Key(priv)
	tg, _ := NormalizeTarget(mustTarget(t, "s1", map[string]any{"properties": map[string]any{"hostname": "s1", "mem": "1"}}))
	for _, c := range []struct {
		name   string
		signer Signer
		verify Verifier
		ok     bool
	}{
		{"hmac ok", hm, hm, true},
		{"hmac wrong key", hm, other, false},
		{"ed25519 ok", ed, ed, true},
		{"ed25519 vs hmac", ed, hm, false},
		{"unsigned rejected", nil, hm, false},
		{"unsigned without key", nil, nil, true},
	} {
		txt, _, err := EncodeTXT(tg, EncodeOptions{Signer: c.signer})
		if err != nil {
			t.Fatal(err)
		}
		ann, _, err := ParseTXT(txt, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := ann.Verify(ann.Target, c.verify); (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v", c.name, err)
		}
	}
	// A forged property with the original signature fails.
	txt, _, _ := EncodeTXT(tg, EncodeOptions{Signer: hm})
	for i, s := range txt {
		if strings.HasPrefix(s, `properties."mem"`) {
			txt[i] = `properties."mem"="999999"`
		}
	}
	ann, _, _ := ParseTXT(txt, "")
	if err := ann.Verify(ann.Target, hm); err == nil {
		t.Error("forged property accepted")
	}
}

func TestParseTXTHostile(t *testing.T) {
	t.Parallel()
	txt := []string{
		`properties."hostname"="h1"`,
		`properties."a"=`,
		`properties."b"=import /etc/passwd`,
		`properties."c"="${builtins.readFile /x}"`,
		`=garbage`,
		"properties.\"d\"=\"\xff\"",
		`properties."e"=[ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ 1 ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ]`,
		`properties."hostname".x=1`,
		`properties."ok"="fine"`,
		`endpoint="file:///etc/passwd"`,
	}
	ann, warns, err := ParseTXT(txt, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 8 {
		t.Errorf("got %d warnings, want 8: %v", len(warns), warns)
	}
	if ann.Target.Properties["ok"] != "fine" || ann.Target.Properties["hostname"] != "h1" || len(ann.Target.Properties) != 2 {
		t.Errorf("properties %v", ann.Target.Properties)
	}
	if ann.Endpoint != "" {
		t.Errorf("endpoint %q accepted", ann.Endpoint)
	}
	if _, _, err := ParseTXT([]string{`properties."mem"="1"`}, ""); err == nil {
		t.Error("a record without hostname and without instance name must be rejected")
	}
	if a, _, err := ParseTXT([]string{`properties."mem"="1"`}, "fromInstance"); err != nil || a.Target.Name != "fromInstance" {
		t.Errorf("instance name fallback: %v", err)
	}
	if _, _, err := ParseTXT([]string{`properties."hostname"="x"`, `compact=true`}, ""); err == nil {
		t.Error("compact without endpoint must be rejected")
	}
}

func TestFormatNix(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    any
		want string
	}{
		{"a", `"a"`},
		{json.Number("12"), `12`},
		{json.Number("-12"), `(-12)`},
		{json.Number("1e3"), `1000.0`},
		{[]any{"process", "wrapper"}, `[ "process" "wrapper" ]`},
		{[]any{}, `[ ]`},
		{map[string]any{"b": true, "a": nil}, `{ "a" = null; "b" = true; }`},
		{"${x}", `"\${x}"`},
		// No literal exists for these two (issue 8, defect 11: the smallest
		// int was written as (-9223372036854775808), which Nix rejects).
		{json.Number("-9223372036854775808"), `(-9223372036854775807 - 1)`},
		{json.Number("-5e-324"), `(-(7.939328826636877e-264 / 1.6069380442589903e+60))`},
	} {
		got, err := FormatNix(c.v)
		if err != nil || got != c.want {
			t.Errorf("FormatNix(%#v) = %q, %v; want %q", c.v, got, err, c.want)
		}
		back, err := ParseNixValue(got)
		if err != nil {
			t.Errorf("ParseNixValue(%q): %v", got, err)
			continue
		}
		if !model.Equal(back, c.v) {
			t.Errorf("ParseNixValue(%q) = %#v, want %#v", got, back, c.v)
		}
		again, _ := FormatNix(back)
		if again != got {
			t.Errorf("reformat %q = %q", got, again)
		}
	}
	// Nix strings cannot hold a NUL byte: refused, never cut short.
	for _, v := range []any{"a\x00b", map[string]any{"k\x00": "v"}, []string{"\x00"}} {
		if got, err := FormatNix(v); err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("FormatNix(%q) = %q, %v; want an error about the NUL byte", v, got, err)
		}
	}
}

// TestFormatNixEvaluates checks that nix-instantiate (as the original's
// browser and a user's tools read TXT values) reads what FormatNix writes
// as the value ParseNixValue reads.
func TestFormatNixEvaluates(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "nix-instantiate")
	vals := []any{
		"x${y}\n\"$\t\\", json.Number("-9223372036854775808"), json.Number("9223372036854775807"),
		json.Number("5e-324"), json.Number("-2.2250738585072014e-308"), json.Number("1e300"), json.Number("-0.5"),
		json.Number("0.1"), []any{json.Number("-1"), nil, true}, map[string]any{"a b": []string{"c"}, "if": "x"},
	}
	var b strings.Builder
	b.WriteString("[")
	for _, v := range vals {
		text, err := FormatNix(v)
		if err != nil {
			t.Fatalf("FormatNix(%#v): %v", v, err)
		}
		b.WriteString(" " + text)
	}
	b.WriteString(" ]")
	file := filepath.Join(t.TempDir(), "values.nix")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := model.LoadValue(file, model.KindPlain, nil) // floats exact
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	parsed, err := ParseNixValue(b.String())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := model.CanonicalJSON(vals)
	for what, v := range map[string]any{"nix-instantiate": got, "ParseNixValue": parsed} {
		if c, _ := model.CanonicalJSON(v); string(c) != string(want) {
			t.Errorf("%s read\n%s\nwant\n%s", what, c, want)
		}
	}
}

// FuzzParseTXT: any TXT record is either read or rejected with an error;
// never a panic, and what is read re-encodes and reads back the same.
func FuzzParseTXT(f *testing.F) {
	for _, s := range []string{
		`properties."hostname"="machine1"`,
		`properties."supportedTypes"=[ "process" "wrapper" ]`,
		`containers.mysql-database."mysqlPort"="3306"`,
		`txtvers=1`, `hash="sha256-abc"`, `endpoint="http://10.0.0.2:9001"`, `compact=true`,
		`properties."a"={ "b" = [ 1 2.5 (-3) null true ]; }`,
		`properties."x"="\"\\\n${"`, `"system"="x86_64-linux"`,
	} {
		f.Add(s, `properties."hostname"="h"`)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ann, _, err := ParseTXT([]string{a, b}, "inst")
		if err != nil {
			return
		}
		n, err := NormalizeTarget(ann.Target)
		if err != nil {
			return
		}
		if _, _, err := EncodeTXT(n, EncodeOptions{Endpoint: "http://127.0.0.1:1"}); err != nil && err != ErrTooLarge {
			// Attributes that clash with our keys are refused by the encoder.
			if !strings.Contains(err.Error(), "clashes") {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}
