package qos

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// zonePredicate keeps the targets whose zone is the service's requireZone,
// counting the loop's calls.
type zonePredicate struct {
	service, target, fits, reason map[string]int
}

func newZonePredicate() *zonePredicate {
	return &zonePredicate{service: map[string]int{}, target: map[string]int{}, fits: map[string]int{}, reason: map[string]int{}}
}

func (p *zonePredicate) Service(env *Env, name string, ids *ValueIDs) (ServiceCheck[string], error) {
	p.service[name]++
	z, _ := env.Services[name].Attrs["requireZone"].(string)
	return ServiceCheck[string]{State: z, Class: ids.ID(z)}, nil
}

func (p *zonePredicate) Target(_ *Env, t *model.Target, _ *ValueIDs) (string, error) {
	p.target[t.Name]++
	z, _ := t.Properties["zone"].(string)
	return z, nil
}

func (p *zonePredicate) Fits(s, t string) (bool, error) {
	p.fits[s+"/"+t]++
	return s == t, nil
}

func (p *zonePredicate) Reason(s, t string) string {
	p.reason[s+"/"+t]++
	return fmt.Sprintf("zone %s is not %s", t, s)
}

func TestPairFilterLoop(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t) // web and cache require US, db Europe; t1, t3 US, t2 Europe
	for _, explain := range []bool{false, true} {
		t.Run(fmt.Sprintf("explain=%v", explain), func(t *testing.T) {
			p := newZonePredicate()
			pol := (&Policy{}).Prepend(NewStep("zone", PairFilter[string, string](p)))
			res, err := pol.Run(Input{Services: svcs, Infrastructure: infra, Explain: explain})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{"web": {"t1", "t3"}, "cache": {"t1", "t3"}, "db": {"t2"}}
			if got := targets(res.Distribution); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			// One Target per target; one Fits per class and target: two
			// classes (US, Europe) × three targets.
			if !reflect.DeepEqual(p.target, map[string]int{"t1": 1, "t2": 1, "t3": 1}) {
				t.Errorf("Target calls %v", p.target)
			}
			wantFits := map[string]int{"US/US": 2, "US/Europe": 1, "Europe/US": 2, "Europe/Europe": 1}
			if !reflect.DeepEqual(p.fits, wantFits) {
				t.Errorf("Fits calls %v, want %v", p.fits, wantFits)
			}
			if !explain {
				if len(p.reason) != 0 {
					t.Errorf("Reason asked without explaining: %v", p.reason)
				}
				return
			}
			// The reason is formatted once per class and target, and
			// recorded for every rejected pair.
			if !reflect.DeepEqual(p.reason, map[string]int{"US/Europe": 1, "Europe/US": 2}) {
				t.Errorf("Reason calls %v", p.reason)
			}
			for svc, want := range map[string][]Rejection{
				"web":   {{StepIndex: 1, Step: "zone", Target: "t2", Reason: "zone Europe is not US"}},
				"cache": {{StepIndex: 1, Step: "zone", Target: "t2", Reason: "zone Europe is not US"}},
				"db": {{StepIndex: 1, Step: "zone", Target: "t1", Reason: "zone US is not Europe"},
					{StepIndex: 1, Step: "zone", Target: "t3", Reason: "zone US is not Europe"}},
			} {
				if got := res.Explanation.Services[svc].Rejections; !reflect.DeepEqual(got, want) {
					t.Errorf("%s rejections %+v, want %+v", svc, got, want)
				}
			}
		})
	}
}

// TestPairFilterSharesUnchangedLists: a service that keeps every candidate
// keeps its input list itself, and services of one class with one input
// list share the kept list.
func TestPairFilterSharesUnchangedLists(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	strs := NewStrings()
	for _, n := range infra.Names() {
		strs.Intern(n)
	}
	in := cartesian(strs, svcs.Names(), len(infra))
	env := &Env{Services: svcs, Infrastructure: infra}
	out, err := PairFilter[string, string](newZonePredicate()).Apply(env, in)
	if err != nil {
		t.Fatal(err)
	}
	cache, web := out.Lists[out.Index("cache")], out.Lists[out.Index("web")]
	if &cache[0] != &web[0] {
		t.Error("services of one class with one list do not share the result")
	}
	all := PairFilter[struct{}, struct{}](allPredicate{})
	out, err = all.Apply(env, in)
	if err != nil {
		t.Fatal(err)
	}
	if &out.Lists[0][0] != &in.Lists[0][0] {
		t.Error("an unchanged list was copied")
	}
}

// allPredicate keeps every target.
type allPredicate struct{}

func (allPredicate) Service(*Env, string, *ValueIDs) (ServiceCheck[struct{}], error) {
	return ServiceCheck[struct{}]{}, nil
}
func (allPredicate) Target(*Env, *model.Target, *ValueIDs) (struct{}, error) { return struct{}{}, nil }
func (allPredicate) Fits(struct{}, struct{}) (bool, error)                   { return true, nil }
func (allPredicate) Reason(struct{}, struct{}) string                        { return "" }
