package rollout

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/qos"
)

// TestPlanExplainsOnRequest: a pure policy is not explained while it plans;
// Explain runs it again on the plan's input and gets what explaining at
// plan time would have given, whatever models were loaded since and
// whatever the assigners added to the plan's services. A policy that
// cannot be run again is explained as it plans.
func TestPlanExplainsOnRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	svcFile := writeFile(t, dir, "services.json", `{
  "a": {"name": "a", "type": "process", "zone": "z1"}, "b": {"name": "b", "type": "process", "dependsOn": ["a"], "zone": "z1", "portAssign": "shared"},
  "c": {"name": "c", "type": "process", "zone": "z2"}, "d": {"name": "d", "type": "process", "zone": "z2"}}`)
	pure := writeFile(t, dir, "pure.yaml", `steps:
  - filter: mapAttrOnAttr
    serviceProperty: zone
    targetProperty: zone
  - filter: divideRoundRobin
`)
	infra := infraOf("t1", "t2", "t3", "t4")
	for i, name := range infra.Names() {
		infra[name].Properties["zone"] = []string{"z1", "z2"}[i%2]
	}
	prev := model.Distribution{"a": {{Target: "t1"}}, "c": {{Target: "t2"}}}
	ports := filepath.Join(dir, "ports.json")
	p, err := NewPlanner(Models{Services: svcFile, QoS: pure, Ports: ports}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cordon := []string{"t1"}
	d, err := p.plan(ctx, infra, prev, true, cordon)
	if err != nil {
		t.Fatal(err)
	}
	if d.Explanation != nil {
		t.Fatalf("a pure policy was explained while it planned: %v", d.Explanation)
	}
	// What explaining at plan time gives: the same policy on the same
	// input (a, on cordoned t1, is pinned and not the policy's).
	p.mu.Lock()
	policy := p.policy
	p.mu.Unlock()
	_, svcs, policyInfra := cordoned(cloneServices(p.services), infra, prev, []string{"t1"})
	want, err := policy.Run(qos.Input{Services: svcs, Infrastructure: policyInfra, Previous: prev, Explain: true, Empty: qos.RejectRemoved})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := mustMarshal(t, want.Explanation)

	// Other models loaded since, and a caller's change to the previous
	// distribution or the cordon list, change nothing.
	writeFile(t, dir, "services.json", `{"e": {"name": "e", "type": "process", "zone": "z9"}}`)
	if _, err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	prev["c"][0].Target = "t4"
	prev["d"] = []model.Mapping{{Target: "t4"}}
	cordon[0] = "t2"
	got, err := d.Explain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gotJSON := mustMarshal(t, got); gotJSON != wantJSON {
		t.Fatalf("explained on request:\n%s\nwant:\n%s", gotJSON, wantJSON)
	}
	ex := got.(*qos.Explanation)
	for _, s := range []string{"b", "c", "d"} {
		if e := ex.Services[s]; e == nil || !slices.Equal(e.Final, d.Distribution.Targets(s)) {
			t.Errorf("%s: explained %v, planned on %v", s, e, d.Distribution.Targets(s))
		}
	}
	if d.Services["b"].Attrs["port"] == nil {
		t.Error("the plan's services have no assigned port: the case of assigners changing them is not covered")
	}

	// An external filter may answer differently when run again: it is
	// explained while it plans (services.json holds e by now).
	script := filepath.Join(dir, "keep.sh")
	testenv.WriteExecutable(t, script, "#!/bin/sh\ncat >/dev/null\nprintf '{\"e\": [\"t2\"]}'\n")
	ext := writeFile(t, dir, "external.yaml", "steps:\n  - filter: external\n    command: ["+script+"]\n")
	pe, err := NewPlanner(Models{Services: svcFile, QoS: ext}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pe.Load(ctx); err != nil {
		t.Fatal(err)
	}
	de, err := pe.Plan(ctx, infra, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if de.Explanation == nil {
		t.Fatal("an external filter's plan has no explanation")
	}
	if got, err := de.Explain(ctx); err != nil || got != de.Explanation {
		t.Errorf("Explain = %v, %v; want the plan's explanation", got, err)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
