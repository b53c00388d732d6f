package model

import (
	"os/exec"
	"testing"
)

func TestQuoteNix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"x${y}", `"x\${y}"`},
		{"$", `"$"`},
		{"a\x00b", `"a${throw "dydisnix: a string holds a NUL byte"}b"`},
	} {
		if got := QuoteNix(tc.in); got != tc.want {
			t.Errorf("QuoteNix(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Fatal("nix-instantiate is needed (apt install nix-bin)")
	}
	out, err := exec.Command("nix-instantiate", "--eval", "--expr", "builtins.attrNames { "+QuoteNix("a\x00b")+" = 1; }").CombinedOutput()
	if err == nil {
		t.Fatalf("a NUL byte evaluated: %s", out)
	}
	out, err = exec.Command("nix-instantiate", "--eval", "--strict", "--json", "--expr", QuoteNix("x${y}\n\"$")).CombinedOutput()
	if err != nil || string(out) != `"x${y}\n\"$"` {
		t.Fatalf("round trip: %s %v", out, err)
	}
}
