package qos

import (
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func TestNumericText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"20", true}, {" 3", true}, {"-4", true}, {"1.5", true}, {"100MB", true},
		{"abc", false}, {"", false}, {"true", false}, {"-", false}, {" x1", false},
	} {
		if got := numericText(tc.text); got != tc.want {
			t.Errorf("numericText(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestDivideRefusesNonNumericCapacities(t *testing.T) {
	t.Parallel()
	svcs := model.Services{
		"a": {Name: "a", Attrs: map[string]any{"mem": "10"}},
		"b": {Name: "b", Attrs: map[string]any{"mem": "lots"}},
	}
	infra := model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"mem": "100"}},
		"t2": {Name: "t2", Properties: map[string]any{"mem": "plenty"}},
	}
	for _, tc := range []struct {
		name, step, want string
		svcs             model.Services
	}{
		{"target", "{filter: divide, strategy: greedy, serviceProperty: mem, targetProperty: mem}", `target t2: property mem: expected a number, got "plenty"`, model.Services{"a": svcs["a"]}},
		{"service", "{filter: divide, strategy: greedy, serviceProperty: mem, targetProperty: mem}", `expected a number, got "lots"`, svcs},
		{"minsetcover", "{filter: minsetcover, targetProperty: mem}", `target t2: property mem: expected a number`, model.Services{"a": svcs["a"]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := infra
			if tc.name == "service" {
				in = model.Infrastructure{"t1": infra["t1"]}
			}
			p, err := ParsePolicy([]byte("steps:\n  - "+tc.step+"\n"), model.FormatYAML, "policy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Run(Input{Services: tc.svcs, Infrastructure: in})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
