package policies_test

import (
	"fmt"
	"testing"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/policies"
	"github.com/dydisnix/dydisnix/qos"
	"github.com/dydisnix/dydisnix/testbed"
)

// displacedBound is the most services of the crashed machine that one
// survivor may take: 10 displaced services over 9 equal survivors, spread
// evenly, put at most 2 on one.
const displacedBound = 2

// crashScenario is 10 equal machines hosting 10 services each (services
// named kind-machine, so that in name order the services of one machine
// are separated by services kept on other machines); machine m03 crashes.
func crashScenario(t *testing.T) (model.Services, model.Infrastructure, model.Distribution, string) {
	t.Helper()
	svcs, infra := map[string]any{}, map[string]any{}
	prev := model.Distribution{}
	kinds := []string{"kvstore", "webfront", "peerA1", "peerB1", "peerA2", "peerB2", "peerA3", "peerB3", "peerA4", "peerB4"}
	for m := 1; m <= 10; m++ {
		machine := fmt.Sprintf("m%02d", m)
		infra[machine] = map[string]any{"properties": map[string]any{"mem": 4096, "supportedTypes": []any{"process"}}}
		for _, k := range kinds {
			name := k + "-" + machine
			svcs[name] = map[string]any{"name": name, "type": "process", "requireMem": 100}
			prev[name] = []model.Mapping{{Target: machine}}
		}
	}
	const crashed = "m03"
	delete(infra, crashed)
	s, err := model.ServicesFromValue(mustNormalize(t, svcs), "services")
	if err != nil {
		t.Fatal(err)
	}
	i, err := model.InfrastructureFromValue(mustNormalize(t, infra), "infrastructure")
	if err != nil {
		t.Fatal(err)
	}
	return s, i, prev, crashed
}

func mustNormalize(t *testing.T, v map[string]any) any {
	t.Helper()
	n, err := model.Normalize(v)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The shipped loop policies spread the services of a crashed machine over
// the survivors, and keep every other service where it was.
func TestLoopPoliciesSpreadDisplacedServices(t *testing.T) {
	demo, err := qos.DefaultRegistry().ParsePolicy([]byte(testbed.DemoPolicy), model.FormatYAML, "demo policy")
	if err != nil {
		t.Fatal(err)
	}
	stable, err := policies.Load("stable-by-type-memory")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		policy *qos.Policy
	}{{"demo", demo}, {"stable-by-type-memory", stable}} {
		t.Run(c.name, func(t *testing.T) {
			svcs, infra, prev, crashed := crashScenario(t)
			res, err := c.policy.Run(qos.Input{Services: svcs, Infrastructure: infra, Previous: prev})
			if err != nil {
				t.Fatal(err)
			}
			took := map[string]int{}
			for s, was := range prev {
				got := res.Distribution.Targets(s)
				if len(got) != 1 {
					t.Fatalf("%s placed on %v", s, got)
				}
				switch {
				case was[0].Target == crashed:
					took[got[0]]++
				case got[0] != was[0].Target:
					t.Errorf("%s moved from %s to %s although its machine survived", s, was[0].Target, got[0])
				}
			}
			most := 0
			for _, n := range took {
				most = max(most, n)
			}
			if len(took) < 2 || most > displacedBound {
				t.Errorf("displaced services went to %v: want them on several survivors, at most %d on one", took, displacedBound)
			}
		})
	}
}
