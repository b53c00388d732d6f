package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"ok", nil, 0, ""},
		{"usage", Usagef("--format %q: expected json or nix", "xml"), 2, "dydisnix-x: usage error: --format \"xml\": expected json or nix\nTry 'dydisnix-x --help'"},
		{"wrapped usage", fmt.Errorf("parse: %w", Usagef("bad")), 2, "Try 'dydisnix-x --help'"},
		{"model", errors.New("services.json: 3:4: invalid JSON"), 1, "dydisnix-x: services.json: 3:4: invalid JSON\n"},
	} {
		var b bytes.Buffer
		if got := Exit("dydisnix-x", tc.err, &b); got != tc.code {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.code)
		}
		if !strings.Contains(b.String(), tc.out) || (tc.out == "" && b.Len() > 0) {
			t.Errorf("%s: stderr %q, want it to contain %q", tc.name, b.String(), tc.out)
		}
	}
}

func TestWarn(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	Warn("dydisnix-x", nil, &b)
	Warn("dydisnix-x", errors.Join(errors.New("s.json: a: unknown dependency b"), errors.New("s.json: c: cycle")), &b)
	want := "dydisnix-x: warning: s.json: a: unknown dependency b\ndydisnix-x: warning: s.json: c: cycle\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}
