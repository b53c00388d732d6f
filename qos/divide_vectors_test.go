package qos

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// algVector is one behaviour vector of /work/shared/vectors (spec §4.5),
// copied into testdata/algos so the tests are self-contained.
type algVector struct {
	Name     string          `json:"name"`
	Filter   string          `json:"filter"`
	Args     map[string]any  `json:"args"`
	Input    json.RawMessage `json:"input"`
	Expected json.RawMessage `json:"expected"`
	Notes    string          `json:"notes"`
	Quirk    bool            `json:"reference_quirk"`
	Is       string          `json:"expected_is"`
}

// algReferenceParams are the parameters that make a filter reproduce the
// reference's unintended behaviour, for vectors with expected_is "reference".
var algReferenceParams = map[string]Params{
	"graphcol": {"outputProperty": "hostname"},
}

// algModels is a vector's input turned into models, the way the vector
// runner (shared/tools/run-vectors.py) turns it into files.
type algModels struct {
	services model.Services
	infra    model.Infrastructure
	dist     model.Distribution
	previous model.Distribution
}

func algDecode(t testing.TB, raw json.RawMessage, file string) any {
	t.Helper()
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	v, err := model.DecodeValue(raw, model.FormatJSON, file)
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	v, err = model.Normalize(v)
	if err != nil {
		t.Fatalf("normalize %s: %v", file, err)
	}
	return v
}

func algLoadModels(t testing.TB, file string, raw json.RawMessage) algModels {
	t.Helper()
	var in map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("%s: input: %v", file, err)
	}
	var m algModels
	var err error
	if v := algDecode(t, in["distribution"], file); v != nil {
		if m.dist, err = model.DistributionFromValue(v, file); err != nil {
			t.Fatal(err)
		}
	}
	if v := algDecode(t, in["previousDistribution"], file); v != nil {
		if m.previous, err = model.DistributionFromValue(v, file); err != nil {
			t.Fatal(err)
		}
	}
	sv := algDecode(t, in["services"], file)
	if sv == nil { // as run-vectors.py: {s: {name: s}} for the distribution keys
		obj := map[string]any{}
		for s := range m.dist {
			obj[s] = map[string]any{"name": s}
		}
		sv = obj
	}
	if m.services, err = model.ServicesFromValue(sv, file); err != nil {
		t.Fatal(err)
	}
	iv := algDecode(t, in["infrastructure"], file)
	if iv == nil { // as run-vectors.py: targets named by the distributions
		obj := map[string]any{}
		for _, d := range []model.Distribution{m.dist, m.previous} {
			for _, ms := range d {
				for _, x := range ms {
					obj[x.Target] = map[string]any{"properties": map[string]any{"hostname": x.Target}}
				}
			}
		}
		iv = obj
	}
	if m.infra, err = model.InfrastructureFromValue(iv, file); err != nil {
		t.Fatal(err)
	}
	if m.dist == nil { // the pipeline's initial distribution: the cartesian product
		m.dist = model.Distribution{}
		targets := m.infra.Names()
		for s := range m.services {
			ms := make([]model.Mapping, len(targets))
			for i, tn := range targets {
				ms[i] = model.Mapping{Target: tn}
			}
			m.dist[s] = ms
		}
	}
	return m
}

// algRun builds the vector's filter from the registry and applies it with
// explanations on, returning the result distribution and the explanation.
func algRun(t testing.TB, v *algVector, m algModels) (model.Distribution, *Explanation, error) {
	t.Helper()
	spec, ok := DefaultRegistry().Lookup(v.Filter)
	if !ok {
		t.Fatalf("filter %q is not registered", v.Filter)
	}
	p := Params{}
	for k, a := range v.Args {
		p[k] = a
	}
	if v.Is == "reference" { // reproduce the reference's unintended behaviour on request
		for k, a := range algReferenceParams[v.Filter] {
			p[k] = a
		}
	}
	f, err := spec.Build(p)
	if err != nil {
		return nil, nil, err
	}
	ex := &Explanation{}
	env := &Env{Services: m.services, Infrastructure: m.infra, Previous: m.previous, Step: v.Filter, Explaining: true, explain: ex}
	in := FromDistribution(NewStrings(), m.dist)
	out, err := f.Apply(env, in)
	if err != nil {
		return nil, ex, err
	}
	return out.Distribution(), ex, nil
}

// algRunVectors runs every testdata/algos vector whose file name starts with
// prefix through its filter.
func algRunVectors(t *testing.T, prefix string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "algos", prefix+"-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no vectors %s-*.json in testdata/algos", prefix)
	}
	sort.Strings(files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v algVector
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			m := algLoadModels(t, file, v.Input)
			got, _, err := algRun(t, &v, m)
			var wantErr struct {
				Error *string `json:"error"`
			}
			_ = json.Unmarshal(v.Expected, &wantErr)
			if wantErr.Error != nil {
				if err == nil {
					t.Fatalf("expected an error containing %q, got %v", *wantErr.Error, algJSON(got))
				}
				if !strings.Contains(err.Error(), *wantErr.Error) {
					t.Fatalf("error %q does not contain %q", err, *wantErr.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			ev := algDecode(t, v.Expected, file)
			want, err := model.DistributionFromValue(ev, file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(algNorm(got), algNorm(want)) {
				t.Fatalf("got %s\nwant %s\nnotes: %s", algJSON(got), algJSON(want), v.Notes)
			}
		})
	}
}

func algNorm(d model.Distribution) model.Distribution {
	out := model.Distribution{}
	for k, v := range d {
		if v == nil {
			v = []model.Mapping{}
		}
		out[k] = v
	}
	return out
}

func algJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
