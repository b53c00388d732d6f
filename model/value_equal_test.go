package model

import "testing"

func TestEqualTypedMaps(t *testing.T) {
	t.Parallel()
	a := (&Target{Name: "t", Properties: map[string]any{"hostname": "t"}, Containers: map[string]map[string]any{"c": {"p": "1"}}}).ToMap()
	b := (&Target{Name: "t", Properties: map[string]any{"hostname": "t"}, Containers: map[string]map[string]any{"c": {"p": "1"}}}).ToMap()
	if !Equal(a, b) {
		t.Fatal("equal targets compare unequal")
	}
	b["containers"].(map[string]map[string]any)["c"]["p"] = "2"
	if Equal(a, b) {
		t.Fatal("different containers compare equal")
	}
	if !Equal([]string{"a"}, []any{"a"}) {
		t.Fatal("[]string and []any with the same names differ")
	}
}
