package qos

import (
	"testing"
)

// ValueIDs gives two values one id exactly when Nix's == holds.
func TestValueIDs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b  string // JSON
		equal bool
	}{
		{`"x"`, `"x"`, true},
		{`"x"`, `"y"`, false},
		{`1`, `1.0`, true},
		{`1`, `"1"`, false},
		{`"s1:x"`, `["x"]`, false},
		{`"bt"`, `true`, false},
		{`null`, `"z"`, false},
		{`["a", 1]`, `["a", 1.0]`, true},
		{`["a", "b"]`, `["b", "a"]`, false},
		{`{"a": 1, "b": [2]}`, `{"b": [2], "a": 1}`, true},
		{`{"a": 1}`, `{"a": "1"}`, false},
		{`[]`, `{}`, false},
	}
	for _, c := range cases {
		var ids ValueIDs
		a, b := ids.ID(mustJSON(t, c.a)), ids.ID(mustJSON(t, c.b))
		if a < 1 || b < 1 {
			t.Errorf("%s, %s: ids %d, %d start at 1", c.a, c.b, a, b)
		}
		if (a == b) != c.equal {
			t.Errorf("%s, %s: ids %d, %d, want equal = %v", c.a, c.b, a, b, c.equal)
		}
		if again := ids.ID(mustJSON(t, c.a)); again != a {
			t.Errorf("%s: id %d then %d", c.a, a, again)
		}
	}
}
