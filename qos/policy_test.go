package qos

import (
	"errors"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// testModels are the reference test suite's models with the second target
// supporting only "process".
func testModels(t *testing.T) (model.Services, model.Infrastructure) {
	t.Helper()
	svcs, err := model.ServicesFromValue(mustJSON(t, `{
		"web": {"name": "web", "type": "process", "requireZone": "US", "requireMem": 10, "stateful": true},
		"db": {"name": "db", "type": "mysql-database", "requireZone": "Europe", "requireMem": 20, "dependsOn": []},
		"cache": {"name": "cache", "type": "process", "requireZone": "US", "requireMem": 5}
	}`), "services.json")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := model.InfrastructureFromValue(mustJSON(t, `{
		"t1": {"properties": {"hostname": "t1", "supportedTypes": ["process", "mysql-database"], "zone": "US", "mem": 100, "priority": 2}},
		"t2": {"properties": {"hostname": "t2", "supportedTypes": ["process"], "zone": "Europe", "mem": 50, "priority": 1}},
		"t3": {"properties": {"hostname": "t3", "supportedTypes": ["process"], "zone": "US", "mem": 50, "priority": 3}}
	}`), "infrastructure.json")
	if err != nil {
		t.Fatal(err)
	}
	return svcs, infra
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	v, err := model.DecodeValue([]byte(s), model.FormatJSON, "test")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustPolicy(t *testing.T, yaml string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(yaml), model.FormatYAML, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func targets(d model.Distribution) map[string][]string {
	out := map[string][]string{}
	for s := range d {
		out[s] = d.Targets(s)
	}
	return out
}

func TestParsePolicyErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, text string
		want       []string
	}{
		{"not a map", `[1]`, []string{"policy.yaml", "expected a QoS policy"}},
		{"no steps", `description: x`, []string{"no \"steps\""}},
		{"steps not a list", `steps: 3`, []string{"steps", "expected a list"}},
		{"unknown top", "steps: []\nstep: []", []string{"unknown attribute \"step\""}},
		{"step not a map", "steps: [x]", []string{"step 1", "expected {filter"}},
		{"no filter", "steps: [{name: a}]", []string{"step 1", "missing \"filter\"", "mapAttrOnList"}},
		{"unknown filter", "steps: [{filter: nope}]", []string{"step 1", "unknown filter \"nope\"", "valid filters:", "divideRoundRobin", "order"}},
		{"unknown param", "steps:\n- filter: divideRoundRobin\n- filter: order\n  targetProperty: p\n  bogus: 1", []string{"policy.yaml", "step 2 (order)", "unknown parameter \"bogus\"", "targetProperty"}},
		{"no params", "steps: [{filter: divideRoundRobin, x: 1}]", []string{"takes no parameters"}},
		{"reserved", "steps: [{filter: order, targetProperty: p, distribution: {}}]", []string{"comes from the pipeline"}},
		{"missing param", "steps: [{filter: mapAttrOnList, serviceProperty: type}]", []string{"step 1 (mapAttrOnList)", "targetPropertyList is required"}},
		{"ill-typed param", "steps: [{filter: order, targetProperty: 3}]", []string{"targetProperty", "expected a string"}},
		{"name not string", "steps: [{filter: order, targetProperty: p, name: [1]}]", []string{"name", "expected a string"}},
		{"external without command", "steps: [{filter: external}]", []string{"command is required"}},
		{"external bad timeout", "steps: [{filter: external, command: cat, timeout: soon}]", []string{"timeout"}},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicy([]byte(c.text), model.FormatYAML, "policy.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEmptyStepsKeepInitial(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	for _, text := range []string{"steps: []", "steps:"} {
		p := mustPolicy(t, text)
		res, err := p.Run(Input{Services: svcs, Infrastructure: infra})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"cache": {"t1", "t2", "t3"}, "db": {"t1", "t2", "t3"}, "web": {"t1", "t2", "t3"}}
		if got := targets(res.Distribution); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %v", text, got)
		}
		init := model.Distribution{"web": {{Target: "t3"}, {Target: "t1"}}, "x": {{Target: "t9", Container: "c", Record: true}}}
		res, err = p.Run(Input{Services: svcs, Infrastructure: infra, Initial: init})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res.Distribution, init) {
			t.Fatalf("initial changed: %v", res.Distribution)
		}
	}
}

func TestNixPolicy(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		testenv.Missing(t, "nix-instantiate not installed (CI installs nix-bin)")
	}
	t.Parallel()
	pn, err := LoadPolicy("testdata/policies/by-type.nix")
	if err != nil {
		t.Fatal(err)
	}
	py, err := LoadPolicy("testdata/policies/by-type.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(pn.Steps) != 2 || pn.Steps[1].Label() != "spread" {
		t.Fatalf("steps %+v", pn.Steps)
	}
	svcs, infra := testModels(t)
	a, err := pn.Run(Input{Services: svcs, Infrastructure: infra})
	if err != nil {
		t.Fatal(err)
	}
	b, err := py.Run(Input{Services: svcs, Infrastructure: infra})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Distribution, b.Distribution) {
		t.Fatalf("nix %v != yaml %v", a.Distribution, b.Distribution)
	}
}

func TestUnknownPolicySource(t *testing.T) {
	t.Parallel()
	if _, err := LoadPolicy("nosuch:x"); err == nil || !strings.Contains(err.Error(), "unknown policy source") {
		t.Fatalf("got %v", err)
	}
	if _, err := LoadPolicy("testdata/none.yaml"); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestNoCandidate(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	p := mustPolicy(t, `
steps:
  - filter: mapAttrOnAttr
    name: zone
    serviceProperty: requireZone
    targetProperty: zone
  - filter: mapAttrOnList
    name: type
    serviceProperty: type
    targetPropertyList: supportedTypes
`)
	// db: zone keeps t2 (Europe), type removes t2 (no mysql-database).
	for _, mode := range []EmptyPolicy{RejectEmpty, RejectRemoved} {
		_, err := p.Run(Input{Services: svcs, Infrastructure: infra, Empty: mode})
		var nc *NoCandidateError
		if !errors.As(err, &nc) {
			t.Fatalf("mode %d: want a NoCandidateError, got %v", mode, err)
		}
		msg := err.Error()
		for _, w := range []string{"service db", "step 2 (type)", "t2", `type "mysql-database" not in supportedTypes ["process"]`} {
			if !strings.Contains(msg, w) {
				t.Errorf("mode %d: %q lacks %q", mode, msg, w)
			}
		}
		if len(nc.Services) != 1 || nc.Services[0].Service != "db" || nc.Services[0].StepIndex != 2 {
			t.Errorf("services %+v", nc.Services)
		}
	}
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Empty: AllowEmpty})
	if err != nil {
		t.Fatal(err)
	}
	if l := res.Distribution["db"]; l == nil || len(l) != 0 {
		t.Fatalf("db: %v", l)
	}
	if len(res.Empty) != 1 || len(res.Warnings) != 1 {
		t.Fatalf("empty %v warnings %v", res.Empty, res.Warnings)
	}
	// A service whose list starts empty: only RejectEmpty fails.
	none := model.Infrastructure{}
	if _, err := (&Policy{}).Run(Input{Services: svcs, Infrastructure: none}); err == nil {
		t.Fatal("RejectEmpty: no error with no targets")
	} else if !strings.Contains(err.Error(), "initial candidate list is empty") {
		t.Fatalf("got %v", err)
	}
	res, err = (&Policy{}).Run(Input{Services: svcs, Infrastructure: none, Empty: RejectRemoved})
	if err != nil || len(res.Warnings) != 3 {
		t.Fatalf("RejectRemoved: %v %v", err, res)
	}
}

func TestEmptiedThenRefilled(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	p := mustPolicy(t, `
steps:
  - filter: mapAttrOnList
    serviceProperty: type
    targetPropertyList: supportedTypes
  - {filter: mapAttrOnAttr, serviceProperty: requireZone, targetProperty: zone}
  - filter: mapBoundServicesToPrevious
`)
	prev := model.Distribution{"db": {{Target: "t1"}}}
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Previous: prev, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Distribution.Targets("db"); !reflect.DeepEqual(got, []string{"t1"}) {
		t.Fatalf("db %v", got)
	}
	notes := res.Explanation.Services["db"].Notes
	if len(notes) != 1 || notes[0].Text != "added t1" || notes[0].StepIndex != 3 {
		t.Fatalf("notes %+v", notes)
	}
}

func TestStepErrorNamesStep(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	p := mustPolicy(t, "steps:\n- {filter: divideRoundRobin}\n- {filter: order, name: prio, targetProperty: nosuch}\n")
	_, err := p.Run(Input{Services: svcs, Infrastructure: infra})
	// lists have one element after round robin: order never looks
	if err != nil {
		t.Fatalf("order forced a property of a 1-element list: %v", err)
	}
	p = mustPolicy(t, "steps:\n- {filter: order, name: prio, targetProperty: nosuch}\n")
	_, err = p.Run(Input{Services: svcs, Infrastructure: infra})
	var se *StepError
	if !errors.As(err, &se) || se.Index != 1 || !strings.Contains(err.Error(), "policy step 1 (prio, filter order)") || !strings.Contains(err.Error(), "attribute 'nosuch' missing") {
		t.Fatalf("got %v", err)
	}
}

func TestFilterQuirks(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	run := func(policy string, init model.Distribution, prev model.Distribution) (map[string]any, error) {
		res, err := mustPolicy(t, policy).Run(Input{Services: svcs, Infrastructure: infra, Initial: init, Previous: prev, Empty: AllowEmpty})
		if err != nil {
			return nil, err
		}
		return asJSON(t, res.Distribution).(map[string]any), nil
	}
	rec := model.Mapping{Target: "t1", Container: "c", Record: true}
	cases := []struct {
		name, policy string
		init, prev   model.Distribution
		want         string // JSON, or "error: substring"
	}{
		{"stateful records never equal names", "steps: [{filter: mapStatefulToPrevious}]",
			model.Distribution{"web": {{Target: "t1"}, {Target: "t2"}}}, model.Distribution{"web": {rec}}, `{"web": []}`},
		{"stateful records equal records", "steps: [{filter: mapStatefulToPrevious}]",
			model.Distribution{"web": {{Target: "t2"}, rec}}, model.Distribution{"web": {rec}}, `{"web": [{"target": "t1", "container": "c"}]}`},
		{"stateful absent from previous", "steps: [{filter: mapStatefulToPrevious}]",
			model.Distribution{"web": {{Target: "t1"}, {Target: "t2"}}}, model.Distribution{"db": {{Target: "t1"}}}, `{"web": ["t1", "t2"]}`},
		{"stateful service missing", "steps: [{filter: mapStatefulToPrevious}]",
			model.Distribution{"ghost": {}}, model.Distribution{}, "error: service ghost is not in the services model"},
		{"bound verbatim, unknown targets kept", "steps: [{filter: mapBoundServicesToPrevious}]",
			model.Distribution{"web": {{Target: "t1"}}, "ghost": {{Target: "t2"}}}, model.Distribution{"web": {{Target: "gone"}}}, `{"web": ["gone"], "ghost": ["t2"]}`},
		{"round robin records", "steps: [{filter: divideRoundRobin}]",
			model.Distribution{"a": {rec}, "b": {rec, {Target: "t2"}}}, nil, `{"a": [{"target": "t1", "container": "c"}], "b": ["t2"]}`},
		{"round robin later empty", "steps: [{filter: divideRoundRobin}]",
			model.Distribution{"a": {{Target: "t1"}}, "b": {}}, nil, "error: Cannot find a target machine!"},
		{"round robin wraps", "steps: [{filter: divideRoundRobin}]",
			model.Distribution{"a": {{Target: "t2"}}, "b": {{Target: "t1"}, {Target: "t2"}}, "c": {{Target: "t3"}, {Target: "t1"}}}, nil, `{"a": ["t2"], "b": ["t1"], "c": ["t3"]}`},
		{"map on empty list is lazy", "steps: [{filter: mapAttrOnList, serviceProperty: nosuch, targetPropertyList: nosuch}]",
			model.Distribution{"ghost": {}}, nil, `{"ghost": []}`},
		{"map unknown target", "steps: [{filter: mapAttrOnAttr, serviceProperty: requireZone, targetProperty: zone}]",
			model.Distribution{"web": {{Target: "t9"}}}, nil, "error: candidate target t9 of service web is not in the infrastructure"},
		{"list property not a list", "steps: [{filter: mapAttrOnList, serviceProperty: type, targetPropertyList: zone}]",
			nil, nil, "error: property zone of target t1 is a string, expected a list"},
		{"mapListOnAttr not a list", "steps: [{filter: mapListOnAttr, servicePropertyList: type, targetProperty: zone}]",
			nil, nil, "error: attribute type of service cache is a string, expected a list"},
		{"order mixed types", "steps: [{filter: order, targetProperty: zone}]",
			nil, nil, `{"cache": ["t2", "t1", "t3"], "db": ["t2", "t1", "t3"], "web": ["t2", "t1", "t3"]}`},
		{"order by mem then name stable", "steps: [{filter: order, targetProperty: mem}]",
			nil, nil, `{"cache": ["t2", "t3", "t1"], "db": ["t2", "t3", "t1"], "web": ["t2", "t3", "t1"]}`},
		{"cartesian step resets", "steps: [{filter: divideRoundRobin}, {filter: createCartesianProduct}]",
			model.Distribution{"a": {{Target: "t1"}}}, nil, `{"cache": ["t1", "t2", "t3"], "db": ["t1", "t2", "t3"], "web": ["t1", "t2", "t3"]}`},
		{"mapAttrOnAttr name attribute", "steps: [{filter: mapAttrOnAttr, serviceProperty: name, targetProperty: hostname}]",
			model.Distribution{"web": {{Target: "t1"}}}, nil, `{"web": []}`},
	}
	for _, c := range cases {
		got, err := run(c.policy, c.init, c.prev)
		if strings.HasPrefix(c.want, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) {
				t.Errorf("%s: want %s, got %v (%v)", c.name, c.want, err, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := mustJSON(t, c.want); !reflect.DeepEqual(asJSON(t, got), asJSON(t, want)) {
			t.Errorf("%s: got %s, want %s", c.name, show(got), c.want)
		}
	}
}

func TestOrderTypeError(t *testing.T) {
	t.Parallel()
	svcs, _ := testModels(t)
	infra, _ := model.InfrastructureFromValue(mustJSON(t, `{"a": {"properties": {"p": 1}}, "b": {"properties": {"p": "x"}}}`), "i")
	_, err := mustPolicy(t, "steps: [{filter: order, targetProperty: p}]").Run(Input{Services: svcs, Infrastructure: infra})
	if err == nil || !strings.Contains(err.Error(), "cannot compare") {
		t.Fatalf("got %v", err)
	}
}

func TestBuildableSystems(t *testing.T) {
	t.Parallel()
	svcs, err := model.ServicesFromValue(mustJSON(t, `{
		"any": {"name": "any"},
		"arm": {"name": "arm", "supportedSystems": ["aarch64-linux"]},
		"x86": {"name": "x86", "supportedSystems": "x86_64-linux"}}`), "s")
	if err != nil {
		t.Fatal(err)
	}
	infra, _ := model.InfrastructureFromValue(mustJSON(t, `{
		"pi": {"system": "aarch64-linux", "properties": {}},
		"pc": {"system": "x86_64-linux", "properties": {}},
		"def": {"properties": {}}}`), "i")
	p := mustPolicy(t, "steps: [{filter: filterBuildable, defaultSystem: x86_64-linux}]")
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"any": {"def", "pc", "pi"}, "arm": {"pi"}, "x86": {"def", "pc"}}
	if got := targets(res.Distribution); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	r := res.Explanation.Services["arm"].Rejections
	if len(r) != 2 || !strings.Contains(r[0].Reason, `system "x86_64-linux" not in supportedSystems ["aarch64-linux"]`) {
		t.Fatalf("rejections %+v", r)
	}
}

func TestNewStepPrependAndGoFilter(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	onlyT3 := FilterFunc(func(env *Env, in *Candidates) (*Candidates, error) {
		out := in.Derive()
		for i, s := range in.Services {
			for _, x := range in.Lists[i] {
				if tg := env.TargetOf(in.Strings, x); tg != nil && tg.Name == "t3" {
					out.Lists[i] = append(out.Lists[i], x)
				} else if env.Explaining {
					env.Reject(s, in.Strings.Name(x.Target), "not t3")
				}
			}
		}
		return out, nil
	})
	p := mustPolicy(t, "steps: [{filter: divideRoundRobin}]").Prepend(NewStep("only-t3", onlyT3))
	if p.Steps[0].Index != 1 || p.Steps[1].Index != 2 {
		t.Fatal("indices not renumbered")
	}
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"cache": {"t3"}, "db": {"t3"}, "web": {"t3"}}
	if got := targets(res.Distribution); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	if r := res.Explanation.Services["web"].Rejections; len(r) != 2 || r[0].Reason != "not t3" || r[0].Step != "only-t3" {
		t.Fatalf("%+v", r)
	}
}

func TestEnvHelpers(t *testing.T) {
	t.Parallel()
	_, infra := testModels(t)
	env := &Env{Infrastructure: infra}
	strs := NewStrings()
	strs.Intern("zzz")
	x := Cand{Target: strs.Intern("t2"), Container: NoContainer}
	if env.TargetOf(strs, x).Name != "t2" || env.TargetIndex(strs, x) != 1 {
		t.Fatal("t2 lookup")
	}
	if env.TargetIndex(strs, Cand{Target: 0, Container: NoContainer}) != -1 {
		t.Fatal("zzz is not a target")
	}
	y := Cand{Target: strs.Intern("t3"), Container: NoContainer} // interned after the cache was built
	if env.TargetIndex(strs, y) != 2 {
		t.Fatal("t3 lookup")
	}
	for _, c := range []struct {
		v    any
		n    int64
		ok   bool
		name string
	}{{mustJSON(t, `"1.5"`), 1, true, "text"}, {mustJSON(t, `true`), 0, true, "bool"}, {mustJSON(t, `" -12abc"`), -12, true, "atoi"}, {mustJSON(t, `[1]`), 0, false, "list"}, {mustJSON(t, `42`), 42, true, "int"}} {
		if n, ok := PropertyNumber(c.v); n != c.n || ok != c.ok {
			t.Errorf("%s: %d %v", c.name, n, ok)
		}
	}
}

func TestFailedRunKeepsExplanation(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	p := mustPolicy(t, "steps:\n- {filter: mapAttrOnAttr, serviceProperty: requireZone, targetProperty: priority}\n- {filter: divideRoundRobin}\n")
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: true})
	var se *StepError
	if !errors.As(err, &se) || se.Index != 2 || len(se.Emptied) != 3 {
		t.Fatalf("got %v", err)
	}
	if res == nil || res.Explanation == nil || res.Distribution != nil {
		t.Fatalf("result %+v", res)
	}
	if e := res.Explanation.Services["web"]; e == nil || e.EmptiedBy != "1 (mapAttrOnAttr)" || len(e.Rejections) != 3 {
		t.Fatalf("web: %+v", e)
	}
	// without Explain: no result, but the error still gives the reasons
	res, err = p.Run(Input{Services: svcs, Infrastructure: infra})
	if res != nil || err == nil || !strings.Contains(err.Error(), `requireZone "US" != priority 2`) {
		t.Fatalf("%v %v", res, err)
	}
}
