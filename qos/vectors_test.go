package qos

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// The shared behaviour vectors (../shared/vectors, copied to
// testdata/vectors so the test is self-contained), run through Policy.Run
// exactly as run-vectors.py runs them through dydisnix-gendist.

type vector struct {
	Name       string         `json:"name"`
	Filter     string         `json:"filter"`
	Args       map[string]any `json:"args"`
	Input      map[string]any `json:"input"`
	Expected   any            `json:"expected"`
	ExpectedIs string         `json:"expected_is"`
	Notes      string         `json:"notes"`
}

// catalogFilters are the vector kinds that are policy filters.
var catalogFilters = map[string]bool{
	"createCartesianProduct": true, "mapAttrOnList": true, "mapListOnAttr": true, "mapAttrOnAttr": true,
	"mapStatefulToPrevious": true, "mapBoundServicesToPrevious": true, "divideRoundRobin": true,
	"order": true, "divide": true, "minsetcover": true, "multiwaycut": true, "graphcol": true,
}

// otherVectorKinds are the vector kinds that are not policy steps, each
// with the test that runs it.
var otherVectorKinds = map[string]string{
	"filterBuildable":      "qos TestVectorFilterBuildable (a step with the vector's oracle as its check)",
	"previousDistribution": "qos TestVectorPreviousDistribution",
	"gendistOutput":        "cmd/dydisnix-gendist TestNixOutputVectors",
	"filterDerivations":    "model TestFilterDerivationsVectors",
	"idassign":             "portassign vector tests",
	"portassign-legacy":    "portassign vector tests",
	"visualizeInfra":       "the CLI vector run (run-vectors.py)",
	"visualizeServices":    "the CLI vector run (run-vectors.py)",
	"documentServices":     "the CLI vector run (run-vectors.py)",
}

// intendedForReference gives, for vectors whose expected value is the
// reference's unintended behaviour, what dydisnix does instead.
var intendedForReference = map[string]string{
	// graphcol names the target by its attribute name, not its hostname
	"graphcol-hostname-is-output": `{"a": ["t1"]}`,
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "vectors", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in testdata/vectors: %v", err)
	}
	var out []vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := model.DecodeValue(data, model.FormatJSON, f)
		if err != nil {
			t.Fatal(err)
		}
		m := v.(map[string]any)
		vec := vector{Name: m["name"].(string), Filter: m["filter"].(string), Expected: m["expected"]}
		vec.Args, _ = m["args"].(map[string]any)
		vec.Input, _ = m["input"].(map[string]any)
		vec.ExpectedIs, _ = m["expected_is"].(string)
		vec.Notes, _ = m["notes"].(string)
		out = append(out, vec)
	}
	return out
}

func targetsOf(d map[string]any, into map[string]bool) {
	for _, l := range d {
		list, _ := l.([]any)
		for _, e := range list {
			switch x := e.(type) {
			case string:
				into[x] = true
			case map[string]any:
				into[x["target"].(string)] = true
			}
		}
	}
}

// vectorModels builds the models as run-vectors.py does.
func vectorModels(t *testing.T, v vector) (model.Services, model.Infrastructure, model.Distribution, model.Distribution) {
	t.Helper()
	distV, _ := v.Input["distribution"].(map[string]any)
	prevV, _ := v.Input["previousDistribution"].(map[string]any)
	svcV, ok := v.Input["services"].(map[string]any)
	if !ok {
		svcV = map[string]any{}
		for s := range distV {
			svcV[s] = map[string]any{"name": s}
		}
	}
	infV, ok := v.Input["infrastructure"].(map[string]any)
	if !ok {
		names := map[string]bool{}
		targetsOf(distV, names)
		targetsOf(prevV, names)
		infV = map[string]any{}
		for n := range names {
			infV[n] = map[string]any{"properties": map[string]any{"hostname": n}}
		}
	}
	svcs, err := model.ServicesFromValue(svcV, v.Name+":services")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := model.InfrastructureFromValue(infV, v.Name+":infrastructure")
	if err != nil {
		t.Fatal(err)
	}
	var dist, prev model.Distribution
	if distV != nil && v.Filter != "createCartesianProduct" {
		if dist, err = model.DistributionFromValue(distV, v.Name+":distribution"); err != nil {
			t.Fatal(err)
		}
	}
	if prevV != nil {
		if prev, err = model.DistributionFromValue(prevV, v.Name+":previous"); err != nil {
			t.Fatal(err)
		}
	}
	return svcs, infra, dist, prev
}

// asJSON normalises a value through JSON so results and expectations compare.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func expectedError(v vector) (string, bool) {
	m, ok := v.Expected.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	s, ok := m["error"].(string)
	return s, ok
}

func checkOutcome(t *testing.T, v vector, res *Result, err error) {
	t.Helper()
	if want, isErr := expectedError(v); isErr {
		if err == nil {
			t.Fatalf("expected an error containing %q, got %s", want, show(asJSON(t, res.Distribution)))
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	got, want := asJSON(t, res.Distribution), asJSON(t, v.Expected)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %s\nwant %s", show(got), show(want))
	}
}

func TestVectors(t *testing.T) {
	vecs := loadVectors(t)
	ran := 0
	for _, v := range vecs {
		if !catalogFilters[v.Filter] {
			continue
		}
		ran++
		t.Run(v.Name, func(t *testing.T) {
			if v.ExpectedIs == "reference" {
				want, known := intendedForReference[v.Name]
				if !known {
					t.Skipf("expected value is the reference's unintended behaviour: %s", v.Notes)
				}
				v.Expected = mustJSON(t, want) // assert the intended behaviour instead
			}
			steps := []any{}
			if v.Filter != "createCartesianProduct" {
				step := map[string]any{"filter": v.Filter}
				for k, a := range v.Args {
					step[k] = a
				}
				steps = append(steps, step)
			}
			pol, err := DefaultRegistry().PolicyFromValue(map[string]any{"steps": steps}, v.Name+".policy")
			if err != nil {
				t.Fatalf("policy: %v", err)
			}
			svcs, infra, dist, prev := vectorModels(t, v)
			res, err := pol.Run(Input{Services: svcs, Infrastructure: infra, Initial: dist, Previous: prev, Empty: RejectRemoved})
			checkOutcome(t, v, res, err)
			// The same run with explanations gives the same answer.
			res2, err2 := pol.Run(Input{Services: svcs, Infrastructure: infra, Initial: dist, Previous: prev, Empty: RejectRemoved, Explain: true})
			if (err == nil) != (err2 == nil) {
				t.Fatalf("explaining changed the outcome: %v vs %v", err, err2)
			}
			if err == nil && !reflect.DeepEqual(asJSON(t, res.Distribution), asJSON(t, res2.Distribution)) {
				t.Fatalf("explaining changed the distribution")
			}
		})
	}
	if ran == 0 {
		t.Fatal("no filter vectors found")
	}
}

// TestVectorFilterBuildable runs the filter-buildable vector with its oracle
// (args.instantiable) as the buildable check.
func TestVectorFilterBuildable(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Filter != "filterBuildable" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			oracle, _ := v.Args["instantiable"].(map[string]any)
			check := func(s *model.Service, tg *model.Target) (bool, string) {
				m, _ := oracle[s.Name].(map[string]any)
				if ok, listed := m[tg.Name].(bool); listed && !ok {
					return false, "instantiation failed (oracle)"
				}
				return true, ""
			}
			pol := (&Policy{}).Prepend(NewStep("filterBuildable", &Buildable{Check: check}))
			svcs, infra, dist, prev := vectorModels(t, v)
			res, err := pol.Run(Input{Services: svcs, Infrastructure: infra, Initial: dist, Previous: prev, Empty: AllowEmpty})
			checkOutcome(t, v, res, err)
			// gendist's default reports the emptied service and the step.
			_, err = pol.Run(Input{Services: svcs, Infrastructure: infra, Initial: dist, Previous: prev, Empty: RejectRemoved})
			var nc *NoCandidateError
			if !errorsAs(err, &nc) || !strings.Contains(err.Error(), "testService1B") || !strings.Contains(err.Error(), "filterBuildable") {
				t.Fatalf("want a no-candidate error naming testService1B and filterBuildable, got %v", err)
			}
		})
	}
}

// TestVectorPreviousDistribution checks the manifest → previous distribution conversion.
func TestVectorPreviousDistribution(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		if v.Filter != "previousDistribution" {
			continue
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			if !IsManifest(v.Input["manifest"]) {
				t.Fatal("manifest not recognised")
			}
			d, err := PreviousFromManifest(v.Input["manifest"], v.Name)
			if err != nil {
				t.Fatal(err)
			}
			want := v.Expected.(map[string]any)["distribution"]
			if got := asJSON(t, d); !reflect.DeepEqual(got, asJSON(t, want)) {
				t.Fatalf("got %s, want %s", show(got), show(want))
			}
		})
	}
	if n == 0 {
		t.Fatal("no previousDistribution vectors")
	}
}

// catalogGaps returns, sorted, the vector kinds that reg does not run: a
// kind of catalogFilters missing from reg, or a kind that is neither a
// registered filter nor one of otherVectorKinds.
func catalogGaps(reg *Registry, kinds []string) []string {
	var gaps []string
	for f := range catalogFilters {
		if _, ok := reg.Lookup(f); !ok {
			gaps = append(gaps, f)
		}
	}
	for _, k := range kinds {
		_, registered := reg.Lookup(k)
		_, other := otherVectorKinds[k]
		if !registered && !other && !slices.Contains(gaps, k) {
			gaps = append(gaps, k)
		}
	}
	sort.Strings(gaps)
	return gaps
}

func TestVectorCatalogComplete(t *testing.T) {
	var kinds []string
	for _, v := range loadVectors(t) {
		kinds = append(kinds, v.Filter)
	}
	if gaps := catalogGaps(DefaultRegistry(), kinds); len(gaps) > 0 {
		t.Fatalf("vector kinds no test runs (register the filter, or name the test in otherVectorKinds): %v", gaps)
	}
	// The check itself finds a gap: a registry without graphcol, and a
	// vector kind nobody knows.
	partial := NewRegistry()
	for _, name := range DefaultRegistry().Names() {
		if name != "graphcol" {
			spec, _ := DefaultRegistry().Lookup(name)
			if err := partial.Register(spec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := catalogGaps(partial, append(kinds, "newKind")); !slices.Equal(got, []string{"graphcol", "newKind"}) {
		t.Fatalf("catalogGaps on a partial registry = %v, want [graphcol newKind]", got)
	}
}
