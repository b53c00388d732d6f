package augment

import (
	"fmt"

	"github.com/dydisnix/dydisnix/model"
)

// ChangeKind says how an attribute changed.
type ChangeKind string

// The kinds of change.
const (
	Added   ChangeKind = "+"
	Changed ChangeKind = "~"
	Removed ChangeKind = "-"
)

// Change is one attribute an augmentation added, changed or removed. It
// holds the attribute path only, never the value, so it can be logged even
// when the value is a secret.
type Change struct {
	Target string
	Path   string // e.g. "properties.dbPassword", "containers.mysql-database"
	Kind   ChangeKind
}

// String renders the change as "target: KIND path".
func (c Change) String() string {
	if c.Path == "" {
		return fmt.Sprintf("%s: %s (whole target)", c.Target, c.Kind)
	}
	return fmt.Sprintf("%s: %s %s", c.Target, c.Kind, c.Path)
}

// Diff lists what changed from before to after, target by target in sorted
// order, descending into attribute sets. Values are not reported.
func Diff(before, after model.Infrastructure) []Change {
	var out []Change
	names := map[string]bool{}
	for n := range before {
		names[n] = true
	}
	for n := range after {
		names[n] = true
	}
	for _, n := range model.SortedKeys(names) {
		b, a := before[n], after[n]
		switch {
		case b == nil:
			out = append(out, Change{Target: n, Kind: Added})
		case a == nil:
			out = append(out, Change{Target: n, Kind: Removed})
		default:
			out = diffValue(out, n, "", targetValue(b), targetValue(a))
		}
	}
	return out
}

func diffValue(out []Change, target, path string, b, a any) []Change {
	bm, ok1 := b.(map[string]any)
	am, ok2 := a.(map[string]any)
	if !ok1 || !ok2 {
		if !model.Equal(b, a) {
			out = append(out, Change{Target: target, Path: path, Kind: Changed})
		}
		return out
	}
	keys := map[string]bool{}
	for k := range bm {
		keys[k] = true
	}
	for k := range am {
		keys[k] = true
	}
	for _, k := range model.SortedKeys(keys) {
		bv, inB := bm[k]
		av, inA := am[k]
		p := join(path, k)
		switch {
		case !inB:
			out = append(out, Change{Target: target, Path: p, Kind: Added})
		case !inA:
			out = append(out, Change{Target: target, Path: p, Kind: Removed})
		default:
			out = diffValue(out, target, p, bv, av)
		}
	}
	return out
}

// targetValue is the target as a plain JSON-like attribute set.
func targetValue(t *model.Target) map[string]any {
	m := t.ToMap()
	if t.Containers != nil {
		cs := make(map[string]any, len(t.Containers))
		for k, v := range t.Containers {
			cs[k] = v
		}
		m["containers"] = cs
	}
	return m
}
