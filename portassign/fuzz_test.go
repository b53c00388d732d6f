package portassign

import (
	"encoding/json"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// addVectorSeeds adds the section of every vector's input named key (as
// JSON) to the fuzz corpus.
func addVectorSeeds(f *testing.F, key string) {
	for _, v := range loadVectors(f) {
		var in any
		switch key {
		case "ids":
			in = v.Input.IDs
		case "idResources":
			in = v.Input.IDResources
		case "ports":
			in = v.Input.Ports
		}
		if in == nil {
			continue
		}
		b, _ := json.Marshal(in)
		f.Add(b)
	}
}

func decodeBoth(data []byte) []any {
	var out []any
	if v, err := model.DecodeValue(data, model.FormatJSON, "fuzz.json"); err == nil {
		out = append(out, v)
	}
	if v, err := model.DecodeValue(data, model.FormatYAML, "fuzz.yaml"); err == nil {
		out = append(out, v)
	}
	return out
}

func FuzzParseIDs(f *testing.F) {
	addVectorSeeds(f, "ids")
	f.Add([]byte(`{"ids": {"p": {"a": -1}}, "lastAssignmentsPerTarget": {"t": {"p": 9223372036854775807}}}`))
	f.Add([]byte("ids:\n  p: {a: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range decodeBoth(data) {
			ids, err := ParseIDs(v, "fuzz")
			if err != nil {
				continue
			}
			back, err := ParseIDs(norm(t, ids.Value()), "again")
			if err != nil {
				t.Fatalf("own output does not parse: %v", err)
			}
			if mustJSON(back.Value()) != mustJSON(ids.Value()) {
				t.Fatalf("round trip changed %s to %s", mustJSON(ids.Value()), mustJSON(back.Value()))
			}
			_ = ids.Nix()
			res := Resources{"p": {Name: "p", Min: 0, Max: 5, Step: 2, Scope: ScopeGlobal}, "q": {Name: "q", Min: -3, Max: 3, Step: 1, Scope: ScopeMachine}}
			out, err := AssignIDs(IDRequest{Services: svcs(map[string][]string{"a": {"p", "q"}, "b": {"p"}, "c": {"q"}}),
				Distribution: dist(map[string][]string{"a": {"t"}, "b": {"t", "u"}, "c": {"t"}}), Resources: res, Previous: ids})
			if err != nil {
				continue
			}
			for r, table := range out.IDs {
				seen := map[int64]bool{}
				for _, id := range table {
					if id < res[r].Min || id > res[r].Max {
						t.Fatalf("resource %s: ID %d out of range", r, id)
					}
					if r == "p" && seen[id] {
						t.Fatalf("resource p: ID %d twice", id)
					}
					seen[id] = true
				}
			}
		}
	})
}

func FuzzParseResources(f *testing.F) {
	addVectorSeeds(f, "idResources")
	f.Add([]byte(`{"u": {"min": "", "max": "7", "step": 3, "scope": "machine"}}`))
	f.Add([]byte("u: {min: -9223372036854775808, max: 9223372036854775807, step: 4611686018427387904}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range decodeBoth(data) {
			res, err := ParseResources(v, "fuzz")
			if err != nil {
				continue
			}
			for _, r := range res {
				if r.Min > r.Max || r.Step < 1 {
					t.Fatalf("accepted an invalid resource %+v", r)
				}
			}
			// Assignment must terminate and stay in range, whatever the numbers.
			out, err := AssignIDs(IDRequest{Services: svcs(map[string][]string{"a": keys(res), "b": keys(res)}),
				Distribution: dist(map[string][]string{"a": {"t"}, "b": {"t"}}), Resources: res})
			if err != nil {
				continue
			}
			for r, table := range out.IDs {
				for _, id := range table {
					if id < res[r].Min || id > res[r].Max {
						t.Fatalf("resource %s: ID %d outside %d..%d", r, id, res[r].Min, res[r].Max)
					}
				}
			}
		}
	})
}

func keys(res Resources) []string {
	out := []string{}
	for k := range res {
		out = append(out, k)
	}
	return out
}

func FuzzParsePortConfig(f *testing.F) {
	addVectorSeeds(f, "ports")
	f.Add([]byte(`{"portConfiguration": {"globalConfig": {"lastPort": 9223372036854775807, "minPort": -9223372036854775808, "maxPort": 9223372036854775807}}}`))
	f.Add([]byte("portConfiguration:\n  targetConfigs:\n    t: {lastPort: 1, minPort: 1, maxPort: 2, servicesToPorts: {a: 1, b: 1}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range decodeBoth(data) {
			conf, err := ParsePortConfig(v, "fuzz")
			if err != nil {
				continue
			}
			out, err := AssignPorts(PortRequest{Services: portSvcs(map[string]string{"a": "shared", "b": "private", "c": "private", "d": "shared"}),
				Distribution: dist(map[string][]string{"a": {"t"}, "b": {"t"}, "c": {"t"}, "d": {"u"}}), Previous: conf})
			if err != nil {
				continue
			}
			back, err := ParsePortConfig(norm(t, out.Value()), "again")
			if err != nil {
				t.Fatalf("own output does not parse: %v", err)
			}
			if mustJSON((&Ports{Ports: out.Ports, Config: back}).Value()) != mustJSON(out.Value()) {
				t.Fatalf("round trip changed the configuration")
			}
			if out.Ports["a"] == out.Ports["d"] {
				t.Fatalf("shared services a and d share port %d", out.Ports["a"])
			}
			if out.Ports["b"] == out.Ports["c"] {
				t.Fatalf("private services b and c on one target share port %d", out.Ports["b"])
			}
			_ = out.Nix()
		}
	})
}
