package policies

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/qos"
)

// The test suite's models (three services, two targets) and what each
// shipped policy makes of them.
func TestShippedPolicies(t *testing.T) {
	svcs, err := model.LoadServices("testdata/services.json")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := model.LoadInfrastructure("testdata/infrastructure.json")
	if err != nil {
		t.Fatal(err)
	}
	both := []string{"testtarget1", "testtarget2"}
	t1, t2 := []string{"testtarget1"}, []string{"testtarget2"}
	want := map[string]map[string][]string{
		"by-type":               {"testService1": both, "testService2": both, "testService3": both},
		"by-type-round-robin":   {"testService1": t1, "testService2": t2, "testService3": t1},
		"greedy-memory":         {"testService1": t1, "testService2": t1, "testService3": t2},
		"by-type-greedy-memory": {"testService1": t1, "testService2": t1, "testService3": t2},
		"min-cost-cover":        {"testService1": t1, "testService2": t1, "testService3": t1},
		"stateful-stays":        {"testService1": t1, "testService2": t2, "testService3": t1},
		"zone-priority":         {"testService1": t1, "testService2": t1, "testService3": t2},
		"stable-by-type-memory": {"testService1": t2, "testService2": t1, "testService3": t2},
	}
	names := Names()
	if len(names) != len(want) {
		t.Errorf("shipped policies %v, the test knows %d", names, len(want))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if p.Description == "" {
				t.Error("no description")
			}
			res, err := p.Run(qos.Input{Services: svcs, Infrastructure: infra})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for s := range res.Distribution {
				got[s] = res.Distribution.Targets(s)
			}
			if w, ok := want[name]; !ok || !reflect.DeepEqual(got, w) {
				g, _ := json.Marshal(got)
				t.Errorf("got %s, want %v", g, w)
			}
		})
	}
}

func TestStatefulStaysKeepsPrevious(t *testing.T) {
	svcs, _ := model.LoadServices("testdata/services.json")
	infra, _ := model.LoadInfrastructure("testdata/infrastructure.json")
	p, err := Load("stateful-stays")
	if err != nil {
		t.Fatal(err)
	}
	prev := model.Distribution{"testService1": {{Target: "testtarget2"}}}
	res, err := p.Run(qos.Input{Services: svcs, Infrastructure: infra, Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Distribution.Targets("testService1"); !reflect.DeepEqual(got, []string{"testtarget2"}) {
		t.Fatalf("stateful testService1 moved to %v", got)
	}
}

func TestStableKeepsPrevious(t *testing.T) {
	svcs, _ := model.LoadServices("testdata/services.json")
	infra, _ := model.LoadInfrastructure("testdata/infrastructure.json")
	p, err := Load("stable-by-type-memory")
	if err != nil {
		t.Fatal(err)
	}
	prev := model.Distribution{"testService1": {{Target: "testtarget2"}}, "testService3": {{Target: "testtarget2"}}}
	res, err := p.Run(qos.Input{Services: svcs, Infrastructure: infra, Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]string{"testService1": "testtarget2", "testService3": "testtarget2", "testService2": "testtarget1"} {
		if got := res.Distribution.Targets(s); !reflect.DeepEqual(got, []string{want}) {
			t.Errorf("%s on %v, want %s", s, got, want)
		}
	}
}

func TestUnknownBuiltin(t *testing.T) {
	_, err := qos.LoadPolicy("builtin:nope")
	if err == nil || !strings.Contains(err.Error(), "by-type") {
		t.Fatalf("want an error listing the shipped policies, got %v", err)
	}
	for _, bad := range []string{"builtin:", "builtin:../x"} {
		if _, err := qos.LoadPolicy(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
