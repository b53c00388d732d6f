package model

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/nixeval"
)

// TestNixNUL checks the one rule for NUL bytes, which a Nix string cannot
// hold (nix-instantiate cuts the string there): the writers that return
// errors refuse them, and QuoteNix (for text builders that cannot fail)
// writes text that fails to evaluate. Issue 8, defect 11: discovery's copy
// of the printer wrote the NUL byte as it was, so the value was silently cut.
func TestNixNUL(t *testing.T) {
	t.Parallel()
	requireNix(t)
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"NixString", func() error { _, err := NixString("a\x00b"); return err }},
		{"NixAttrName", func() error { _, err := NixAttrName("a\x00b"); return err }},
		{"EncodeNix value", func() error { _, err := EncodeNix(map[string]any{"a": "x\x00y"}); return err }},
		{"EncodeNix name", func() error { _, err := EncodeNix(map[string]any{"x\x00y": "a"}); return err }},
		{"Encode distribution", func() error {
			_, err := Encode(Distribution{"s": {{Target: "t", Container: "c\x00", Record: true}}}, FormatNix)
			return err
		}},
	} {
		if err := tc.err(); err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("%s: want an error about the NUL byte, got %v", tc.name, err)
		}
	}
	for _, expr := range []string{
		QuoteNix("a\x00b"),
		"{ " + QuoteNix("a\x00b") + " = 1; }",
		"(" + DistributionNix(Distribution{"s\x00": {{Target: "t"}}}) + ") { infrastructure = { t = { }; }; }",
	} {
		_, err := nixeval.Run(context.Background(), nixeval.Command, []string{"--eval", "--strict", "--json", "--expr", expr}, nil)
		var ee *nixeval.Error
		if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "NUL byte") {
			t.Errorf("%q evaluated without the NUL error: %v", expr, err)
		}
	}
}

// TestQuoteNix checks QuoteNix's text and that the real evaluator reads it
// back as the string.
func TestQuoteNix(t *testing.T) {
	t.Parallel()
	requireNix(t)
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"x${y}", `"x\${y}"`},
		{"$", `"$"`},
		{"x${y}\n\"$\t\r", `"x\${y}\n\"$\t\r"`},
		{"a\x00b", `"a${throw "dydisnix: a string holds a NUL byte"}b"`},
	} {
		if got := QuoteNix(tc.in); got != tc.want {
			t.Errorf("QuoteNix(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if strings.Contains(tc.in, "\x00") {
			continue
		}
		out, err := nixeval.Run(context.Background(), nixeval.Command, []string{"--eval", "--strict", "--json", "--expr", QuoteNix(tc.in)}, nil)
		var back string
		if err == nil {
			err = json.Unmarshal(out, &back)
		}
		if err != nil || back != tc.in {
			t.Errorf("QuoteNix(%q) evaluated to %q, %v", tc.in, back, err)
		}
	}
}
