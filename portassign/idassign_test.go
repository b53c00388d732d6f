package portassign

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// svcs builds a services model: each name maps to the resources it needs.
func svcs(needs map[string][]string) model.Services {
	out := model.Services{}
	for name, rs := range needs {
		list := make([]any, len(rs))
		for i, r := range rs {
			list[i] = r
		}
		out[name] = &model.Service{Name: name, Attrs: map[string]any{DefaultIDServiceProperty: list}}
	}
	return out
}

func dist(m map[string][]string) model.Distribution {
	d := model.Distribution{}
	for s, ts := range m {
		ms := []model.Mapping{}
		for _, t := range ts {
			ms = append(ms, model.Mapping{Target: t})
		}
		d[s] = ms
	}
	return d
}

// checkErr checks err against want, a part of the expected message ("":
// no error), and reports whether an error was expected (the case is done).
func checkErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one containing %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAssignIDs(t *testing.T) {
	t.Parallel()
	three := svcs(map[string][]string{"a": {"ports"}, "b": {"ports"}, "c": {"ports"}})
	cases := []struct {
		name    string
		req     IDRequest
		want    string // JSON of IDs.Value()
		wantErr string
	}{
		{
			name: "step honoured",
			req:  IDRequest{Services: three, Resources: Resources{"ports": {Name: "ports", Min: 10, Max: 20, Step: 5, Scope: ScopeGlobal}}},
			want: `{"ids":{"ports":{"a":10,"b":15,"c":20}},"lastAssignments":{"ports":20}}`,
		},
		{
			name: "step wraps to min and skips used",
			req: IDRequest{Services: three, Resources: Resources{"ports": {Name: "ports", Min: 10, Max: 20, Step: 5, Scope: ScopeGlobal}},
				Previous: &IDs{IDs: map[string]map[string]int64{"ports": {"a": 10}}, LastAssignments: map[string]int64{"ports": 15}}},
			want: `{"ids":{"ports":{"a":10,"b":20,"c":15}},"lastAssignments":{"ports":15}}`,
		},
		{
			// The reference loops forever here: 3 IDs in range, only 2
			// reachable with step 2 (10, 12), the pool check passes.
			name:    "step cycle detected instead of endless loop",
			req:     IDRequest{Services: three, Resources: Resources{"ports": {Name: "ports", Min: 10, Max: 12, Step: 2, Scope: ScopeGlobal}}},
			wantErr: "The amount of IDs is depleted!",
		},
		{
			name: "released ID held back for one generation",
			req: IDRequest{Services: svcs(map[string][]string{"b": {"ports"}, "c": {"ports"}}),
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 3, Step: 1, Scope: ScopeGlobal}},
				Previous:  &IDs{IDs: map[string]map[string]int64{"ports": {"a": 2, "b": 3}}, LastAssignments: map[string]int64{"ports": 1}}},
			// c would get 2 (a's, released now): it gets 1 instead.
			want: `{"ids":{"ports":{"b":3,"c":1}},"lastAssignments":{"ports":1}}`,
		},
		{
			name: "only released IDs left: depleted, naming the held-back ones",
			req: IDRequest{Services: svcs(map[string][]string{"b": {"ports"}, "c": {"ports"}}),
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 2, Step: 1, Scope: ScopeGlobal}},
				Previous:  &IDs{IDs: map[string]map[string]int64{"ports": {"a": 2, "b": 1}}}},
			wantErr: "held back",
		},
		{
			name: "duplicate IDs in the previous file: first in sorted order keeps it",
			req: IDRequest{Services: three, Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeGlobal}},
				Previous: &IDs{IDs: map[string]map[string]int64{"ports": {"a": 5, "b": 5, "c": 6}}, LastAssignments: map[string]int64{"ports": 6}}},
			want: `{"ids":{"ports":{"a":5,"b":7,"c":6}},"lastAssignments":{"ports":7}}`,
		},
		{
			name: "machine scope: a service on two targets gets an ID free on both",
			req: IDRequest{Services: three, Distribution: dist(map[string][]string{"a": {"t1"}, "b": {"t2"}, "c": {"t1", "t2"}}),
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeMachine}}},
			want: `{"ids":{"ports":{"a":1,"b":1,"c":2}},"lastAssignmentsPerTarget":{"t1":{"ports":2},"t2":{"ports":1}}}`,
		},
		{
			name: "machine scope: a moved service whose ID collides is renumbered",
			req: IDRequest{Services: three, Distribution: dist(map[string][]string{"a": {"t1"}, "b": {"t1"}}),
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeMachine}},
				Previous: &IDs{IDs: map[string]map[string]int64{"ports": {"a": 1, "b": 1}},
					LastAssignmentsPerTarget: map[string]map[string]int64{"t1": {"ports": 1}, "t2": {"ports": 1}}}},
			want: `{"ids":{"ports":{"a":1,"b":2}},"lastAssignmentsPerTarget":{"t1":{"ports":2}}}`,
		},
		{
			name: "machine scope: empty per-target table for targets without ID users",
			req: IDRequest{Services: svcs(map[string][]string{"a": {"ports"}, "x": nil}), Distribution: dist(map[string][]string{"a": {"t1"}, "x": {"t2"}}),
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeMachine}}},
			want: `{"ids":{"ports":{"a":1}},"lastAssignmentsPerTarget":{"t1":{"ports":1},"t2":{}}}`,
		},
		{
			name: "services mode: a service whose name differs from its key is skipped",
			req: IDRequest{Services: model.Services{"a": &model.Service{Name: "other", Attrs: map[string]any{DefaultIDServiceProperty: []any{"ports"}}}},
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeGlobal}}},
			want: `{"ids":{"ports":{}}}`,
		},
		{
			name: "property that is not a list asks for nothing",
			req: IDRequest{Services: model.Services{"a": &model.Service{Name: "a", Attrs: map[string]any{DefaultIDServiceProperty: "ports"}}},
				Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeGlobal}}},
			want: `{"ids":{"ports":{}}}`,
		},
		{
			name: "last above max wraps to min",
			req: IDRequest{Services: three, Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: ScopeGlobal}},
				Previous: &IDs{LastAssignments: map[string]int64{"ports": 50}}},
			want: `{"ids":{"ports":{"a":1,"b":2,"c":3}},"lastAssignments":{"ports":3}}`,
		},
		{
			name:    "unknown scope",
			req:     IDRequest{Services: three, Resources: Resources{"ports": {Name: "ports", Min: 1, Max: 9, Step: 1, Scope: "rack"}}},
			wantErr: "Unknown scope: rack",
		},
		{
			name: "no resources: empty ids",
			req:  IDRequest{Services: three, Resources: Resources{}, Previous: &IDs{IDs: map[string]map[string]int64{"ports": {"a": 1}}, LastAssignments: map[string]int64{"ports": 1}}},
			want: `{"ids":{}}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := AssignIDs(tc.req)
			if checkErr(t, err, tc.wantErr) {
				return
			}
			if got := mustJSON(out.Value()); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAssignIDsDepletedErrorType(t *testing.T) {
	t.Parallel()
	_, err := AssignIDs(IDRequest{Services: svcs(map[string][]string{"a": {"uids"}, "b": {"uids"}}),
		Resources: Resources{"uids": {Name: "uids", Min: 7, Max: 7, Step: 1, Scope: ScopeGlobal}}})
	var de *DepletedError
	if !errors.As(err, &de) || de.Resource != "uids" || de.Service != "b" {
		t.Fatalf("got %v, want a DepletedError for uids/b", err)
	}
}

// TestAssignIDsStable checks invariants over many generated runs: IDs in
// range and unique in their scope, re-running with its own output changes
// nothing, and a kept service never changes its ID.
func TestAssignIDsStable(t *testing.T) {
	t.Parallel()
	for seed := 0; seed < 200; seed++ {
		needs := map[string][]string{}
		dm := map[string][]string{}
		for i := 0; i < 1+seed%7; i++ {
			name := fmt.Sprintf("s%d", (seed*7+i*3)%11)
			needs[name] = []string{"ports", "uids"}
			dm[name] = []string{fmt.Sprintf("t%d", (seed+i)%3)}
		}
		res := Resources{
			"ports": {Name: "ports", Min: 100, Max: 130, Step: 1 + int64(seed%3), Scope: ScopeGlobal},
			"uids":  {Name: "uids", Min: 1, Max: 20, Step: 1, Scope: ScopeMachine},
		}
		req := IDRequest{Services: svcs(needs), Distribution: dist(dm), Resources: res}
		first, err := AssignIDs(req)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		req.Previous = first
		second, err := AssignIDs(req)
		if err != nil {
			t.Fatalf("seed %d rerun: %v", seed, err)
		}
		if a, b := mustJSON(first.Value()), mustJSON(second.Value()); a != b {
			t.Fatalf("seed %d: rerun changed the result:\n%s\n%s", seed, a, b)
		}
		seen := map[int64]string{}
		for svc, id := range second.IDs["ports"] {
			if id < 100 || id > 130 || (id-100)%res["ports"].Step != 0 {
				t.Fatalf("seed %d: %s got port %d outside the stepped range", seed, svc, id)
			}
			if other, dup := seen[id]; dup {
				t.Fatalf("seed %d: %s and %s share port %d", seed, svc, other, id)
			}
			seen[id] = svc
		}
		perTarget := map[string]map[int64]bool{}
		for svc, id := range second.IDs["uids"] {
			t0 := dm[svc][0]
			if perTarget[t0] == nil {
				perTarget[t0] = map[int64]bool{}
			}
			if perTarget[t0][id] {
				t.Fatalf("seed %d: uid %d used twice on %s", seed, id, t0)
			}
			perTarget[t0][id] = true
		}
	}
}

func TestParseResources(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want, wantErr string
	}{
		{in: `{"ports": {"min": 3000, "max": 4000}}`, want: `{"ports":{"Name":"ports","Min":3000,"Max":4000,"Scope":"global","Step":1}}`},
		{in: `{"u": {"min": "", "max": "9", "scope": "", "step": 0}}`, want: `{"u":{"Name":"u","Min":0,"Max":9,"Scope":"global","Step":1}}`},
		{in: `{"u": {"min": 1, "max": 9, "step": 3, "scope": "machine"}}`, want: `{"u":{"Name":"u","Min":1,"Max":9,"Scope":"machine","Step":3}}`},
		{in: `{"u": {"min": 9, "max": 1}}`, wantErr: "r.json: u: min 9 is greater than max 1"},
		{in: `{"u": {"min": "x"}}`, wantErr: "r.json: u.min: expected an integer"},
		{in: `{"u": {"min": 1.5}}`, wantErr: "u.min: expected an integer"},
		{in: `{"u": {"mni": 1}}`, wantErr: "u.mni: unknown resource attribute"},
		{in: `{"u": {"step": -1}}`, wantErr: "u.step: expected a step of at least 1"},
		{in: `{"u": {"min": -5, "max": 10}}`, wantErr: "r.json: u.min: expected a number of at least 0, got -5"},
		{in: `{"u": {"min": 0, "max": -1}}`, wantErr: "u.max: expected a number of at least 0"},
		{in: `{"u": {"scope": 1}}`, wantErr: "u.scope: expected"},
		{in: `[1]`, wantErr: "expected an attribute set of resources"},
		{in: `{"u": 3}`, wantErr: "u: expected a resource attribute set"},
	}
	for _, tc := range cases {
		v, err := model.DecodeValue([]byte(tc.in), model.FormatJSON, "r.json")
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseResources(v, "r.json")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if g := mustJSON(got); g != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, g, tc.want)
		}
	}
}

func TestParseIDsErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"ids": {"ports": {"a": "x"}}}`:         "ids.json: ids.ports.a: expected an integer",
		`{"ids": []}`:                            "ids.json: ids: expected an attribute set of resources",
		`{"lastAssignments": {"ports": true}}`:   "lastAssignments.ports: expected an integer",
		`{"lastAssignmentsPerTarget": {"t": 1}}`: "lastAssignmentsPerTarget.t: expected an attribute set",
		`{"idz": {}}`:                            "idz: unknown section",
		`"text"`:                                 "expected an attribute set",
	}
	for in, want := range cases {
		v, err := model.DecodeValue([]byte(in), model.FormatJSON, "ids.json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseIDs(v, "ids.json"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
}
