package qos

import (
	"strings"
	"testing"
)

func TestDivideVectors(t *testing.T) { algRunVectors(t, "divide") }

func TestDivideParams(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		p       Params
		wantErr string
	}{
		{"missing strategy", Params{"serviceProperty": "a", "targetProperty": "b"}, "A strategy must be provided!"},
		{"unknown strategy", Params{"strategy": "best", "serviceProperty": "a", "targetProperty": "b"}, "Unknown strategy: best"},
		{"no properties", Params{"strategy": "greedy"}, "are required"},
		{"half pair", Params{"strategy": "greedy", "serviceProperty": "a"}, "must be given together"},
		{"lists differ", Params{"strategy": "greedy", "serviceProperties": []any{"a", "b"}, "targetProperties": []any{"c"}}, "same length"},
		{"unknown param", Params{"strategy": "greedy", "serviceProperty": "a", "targetProperty": "b", "bogus": 1}, `unknown parameter "bogus"; valid parameters: pinnedFirst, serviceProperties, serviceProperty, strategy, targetProperties, targetProperty`},
		{"ill-typed", Params{"strategy": "greedy", "serviceProperty": 3, "targetProperty": "b"}, "serviceProperty: expected a string"},
		{"ok single", Params{"strategy": "greedy", "serviceProperty": "a", "targetProperty": "b"}, ""},
		{"ok lists", Params{"strategy": "lowest-bidder", "serviceProperties": []any{"a", "b"}, "targetProperties": []any{"c", "d"}}, ""},
		{"ok both", Params{"strategy": "highest-bidder", "serviceProperty": "x", "targetProperty": "y", "serviceProperties": []any{"a"}, "targetProperties": []any{"c"}}, ""},
		{"pinnedFirst not bool", Params{"strategy": "greedy", "serviceProperty": "a", "targetProperty": "b", "pinnedFirst": "yes"}, "pinnedFirst: expected true or false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := divideSpec.Build(c.p)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}
