package qos

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// countingFilter passes its input through and counts its runs.
func countingFilter(n *atomic.Int32) Factory {
	return func(Params) (Filter, error) {
		return FilterFunc(func(_ *Env, in *Candidates) (*Candidates, error) {
			n.Add(1)
			return in, nil
		}), nil
	}
}

func TestRegistryIsAValue(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	mine := DefaultRegistry()
	if err := mine.Register(Spec{Name: "passThrough", New: countingFilter(&runs), Pure: true}); err != nil {
		t.Fatal(err)
	}
	const policy = "steps: [{filter: passThrough}, {filter: divideRoundRobin}]"
	if _, err := mine.ParsePolicy([]byte(policy), model.FormatYAML, "q.yaml"); err != nil {
		t.Fatalf("the registry that has the filter: %v", err)
	}
	// Another registry, the default one included, does not know it.
	for name, r := range map[string]*Registry{"default": DefaultRegistry(), "empty": NewRegistry()} {
		_, err := r.ParsePolicy([]byte(policy), model.FormatYAML, "q.yaml")
		if err == nil || !strings.Contains(err.Error(), `unknown filter "passThrough"`) {
			t.Errorf("%s registry: want unknown filter passThrough, got %v", name, err)
		}
	}
	if _, err := ParsePolicy([]byte(policy), model.FormatYAML, "q.yaml"); err == nil {
		t.Error("the package-level ParsePolicy saw a filter registered in another registry")
	}
}

func TestRegistryRegisterErrors(t *testing.T) {
	t.Parallel()
	noop := func(Params) (Filter, error) {
		return FilterFunc(func(_ *Env, in *Candidates) (*Candidates, error) { return in, nil }), nil
	}
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"duplicate of a built-in", Spec{Name: "divide", New: noop}, "already registered"},
		{"empty name", Spec{New: noop}, "empty name"},
		{"no factory", Spec{Name: "x"}, "no factory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := DefaultRegistry().Register(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestRegistrySourcesAndStep(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	if _, err := r.LoadPolicy("builtin:by-type"); err == nil || !strings.Contains(err.Error(), `unknown policy source "builtin"`) {
		t.Fatalf("an empty registry has no builtin source: %v", err)
	}
	r.AddSource("mem", func(name string) ([]byte, string, error) {
		return []byte(`{"steps": []}`), name + ".json", nil
	})
	if p, err := r.LoadPolicy("mem:x"); err != nil || len(p.Steps) != 0 || p.File != "mem:x" {
		t.Fatalf("mem:x: %+v %v", p, err)
	}
	d := DefaultRegistry()
	st, err := d.Step("filterBuildable", "", nil)
	if err != nil || !st.Pure || st.Label() != "filterBuildable" {
		t.Fatalf("step %+v %v", st, err)
	}
	if _, err := d.Step("order", "", Params{"bogus": 1}); err == nil || !strings.Contains(err.Error(), `unknown parameter "bogus"`) {
		t.Fatalf("want an unknown parameter error, got %v", err)
	}
	if _, err := d.Step("nosuch", "", nil); err == nil || !strings.Contains(err.Error(), "valid filters: createCartesianProduct") {
		t.Fatalf("want an unknown filter error listing the filters, got %v", err)
	}
	ext, _ := d.Lookup("external")
	for _, name := range d.Names() {
		if s, _ := d.Lookup(name); !s.Pure && name != ext.Name {
			t.Errorf("built-in %s is not Pure", name)
		}
	}
	if ext.Pure {
		t.Error("external is Pure: a failed run would run its command again")
	}
}

// A failed run is repeated with explanations only when every step is Pure:
// the filter's Spec says so, whatever its name (the pipeline used to
// recognise the step named "external" and re-run everything else).
func TestRerunOnlyPureSteps(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	for _, pure := range []bool{false, true} {
		var runs atomic.Int32
		r := DefaultRegistry()
		if err := r.Register(Spec{Name: "sideEffect", New: countingFilter(&runs), Pure: pure}); err != nil {
			t.Fatal(err)
		}
		p, err := r.ParsePolicy([]byte("steps: [{filter: sideEffect}, {filter: mapAttrOnAttr, serviceProperty: requireZone, targetProperty: hostname}]"), model.FormatYAML, "q.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Run(Input{Services: svcs, Infrastructure: infra})
		var nc *NoCandidateError
		if !errors.As(err, &nc) {
			t.Fatalf("pure=%v: want a no-candidate error, got %v", pure, err)
		}
		want, why := int32(1), "an impure step ran again"
		if pure {
			want, why = 2, "a pure policy was not run again to explain"
		}
		if got := runs.Load(); got != want {
			t.Errorf("pure=%v: the step ran %d times, want %d (%s)", pure, got, want, why)
		}
		explained := strings.Contains(err.Error(), `requireZone "US" != hostname "t1"`)
		if explained != pure {
			t.Errorf("pure=%v: error explains the rejections = %v: %v", pure, explained, err)
		}
	}
}
