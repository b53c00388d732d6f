package qos

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// nixQoS loads the models of testdata/nixqos and runs the QoS model file
// (a path under testdata/nixqos, or Nix text written to a temporary file).
type nixQoSCase struct {
	name     string
	qos      string // file in testdata/nixqos, or Nix text when it holds a newline
	infra    string // infrastructure file in testdata/nixqos (default infrastructure.json)
	filters  string // -F catalog: file in testdata/nixqos or Nix text
	previous bool   // previous.json as the previous distribution
	extra    string // --extra-params
	want     map[string][]string
	wantErr  []string // substrings of the error
	// mode: "fast" when the fast mode must have answered (one evaluation),
	// "replay" when the model needs real values (more than one).
	mode string
}

func nixQoSFile(t *testing.T, text string) string {
	t.Helper()
	if text == "" {
		return ""
	}
	if !strings.Contains(text, "\n") {
		return filepath.Join("testdata/nixqos", text)
	}
	f := filepath.Join(t.TempDir(), "model.nix")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func runNixQoS(t *testing.T, c nixQoSCase, noFast bool) (map[string][]string, *NixModel, error) {
	t.Helper()
	services, err := model.LoadServices("testdata/nixqos/services.json")
	if err != nil {
		t.Fatal(err)
	}
	infraFile := c.infra
	if infraFile == "" {
		infraFile = "infrastructure.json"
	}
	infra, err := model.LoadInfrastructure(filepath.Join("testdata/nixqos", infraFile))
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Services: services, Infrastructure: infra, Empty: AllowEmpty}
	if c.previous {
		if in.Previous, err = model.LoadDistribution("testdata/nixqos/previous.json", infra); err != nil {
			t.Fatal(err)
		}
	}
	p, err := DefaultRegistry().LoadQoS(nixQoSFile(t, c.qos), NixModelOptions{Filters: nixQoSFile(t, c.filters), Nix: model.NixOptions{ExtraParams: c.extra}})
	if err != nil {
		return nil, nil, err
	}
	m, ok := p.Steps[0].impl.(*NixModel)
	if !ok {
		t.Fatalf("%s is not loaded as a QoS model", c.qos)
	}
	if noFast {
		m.Fast = false
	}
	res, err := p.Run(in)
	if err != nil {
		return nil, m, err
	}
	got := map[string][]string{}
	for s, ms := range res.Distribution {
		got[s] = []string{}
		for _, x := range ms {
			got[s] = append(got[s], x.Target)
		}
	}
	return got, m, nil
}

const qosHead = "{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:\n"

// TestNixQoSModels runs QoS models of the original's form, among them the
// original test suite's (tests/gendist.nix, dydisnix.md §4.1), whose
// expected results are the spec's and the vectors'. Every case runs twice:
// as loaded (fast mode when the model allows it) and in replay mode only;
// both must give the same result.
func TestNixQoSModels(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	both := []string{"testtarget1", "testtarget2"}
	t1, t2 := []string{"testtarget1"}, []string{"testtarget2"}
	cases := []nixQoSCase{
		{name: "mapattronattr", qos: "qos-mapattronattr.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t2}},
		{name: "mapattronlist", qos: "qos-mapattronlist.nix", mode: "fast",
			want: map[string][]string{"testService1": both, "testService2": both, "testService3": both}},
		{name: "maplistonattr", qos: "qos-maplistonattr.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t2, "testService3": both}},
		{name: "order", qos: "qos-order.nix", mode: "fast",
			want: map[string][]string{"testService1": {"testtarget2", "testtarget1"}, "testService2": {"testtarget2", "testtarget1"}, "testService3": {"testtarget2", "testtarget1"}}},
		{name: "greedy", qos: "qos-greedy.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t2}},
		{name: "highest-bidder", qos: "qos-highest-bidder.nix", mode: "fast",
			want: map[string][]string{"testService1": t2, "testService2": t1, "testService3": t2}},
		{name: "lowest-bidder", qos: "qos-lowest-bidder.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t2}},
		{name: "greedy undercapacity", qos: "qos-greedy.nix", infra: "infrastructure-undercapacity.json",
			wantErr: []string{"qos-greedy.nix", "filters.divide", "testService1"}},
		{name: "roundrobin", qos: "qos-roundrobin.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t2, "testService3": t1}},
		{name: "minsetcover", qos: "qos-minsetcover.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t1}},
		{name: "minsetcover2", qos: "qos-minsetcover2.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t2}},
		{name: "multiwaycut 2", qos: "qos-multiwaycut.nix", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t1}},
		{name: "multiwaycut 3", qos: "qos-multiwaycut.nix", infra: "infrastructure-3.json", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t1}},
		{name: "graphcol 3", qos: "qos-graphcol.nix", infra: "infrastructure-3.json", mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t2, "testService3": {"testtarget3"}}},
		{name: "graphcol 2", qos: "qos-graphcol.nix", wantErr: []string{"qos-graphcol.nix", "filters.graphcol"}},
		{name: "firsttargets", qos: "qos-firsttargets.nix", mode: "replay",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t1}},
		{name: "mapstatefultoprevious", qos: "qos-mapstatefultoprevious.nix", previous: true, mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": both, "testService3": both}},
		{name: "mapstatefultoprevious without previous", qos: "qos-mapstatefultoprevious.nix", mode: "fast",
			want: map[string][]string{"testService1": both, "testService2": both, "testService3": both}},
		{name: "mapboundservicestoprevious", qos: "qos-mapboundservicestoprevious.nix", previous: true, mode: "fast",
			want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t1}},
		{name: "the initial distribution itself", qos: qosHead + "initialDistribution\n", mode: "fast",
			want: map[string][]string{"testService1": both, "testService2": both, "testService3": both}},
		// Plain Nix over a filter's result, then a filter on that.
		{name: "head of every list then round robin", mode: "replay", qos: qosHead + `filters.divideRoundRobin {
  distribution = builtins.mapAttrs (n: ts: [ (builtins.head ts) ]) (filters.order {
    inherit infrastructure;
    distribution = initialDistribution;
    targetProperty = "priority";
  });
}
`, want: map[string][]string{"testService1": t2, "testService2": t2, "testService3": t2}},
		// A model looking inside a filter's result decides on real values.
		{name: "inspects a result", mode: "replay", qos: qosHead + `let
  r = filters.mapAttrOnAttr { inherit services infrastructure; distribution = initialDistribution; serviceProperty = "requireZone"; targetProperty = "zone"; };
in
if r.testService3 == [ "testtarget2" ] then filters.divideRoundRobin { distribution = r; } else initialDistribution
`, want: map[string][]string{"testService1": t1, "testService2": t1, "testService3": t2}},
		{name: "lib and filters on a computed distribution", mode: "replay", qos: qosHead + `filters.mapAttrOnList {
  inherit services infrastructure;
  distribution = lib.filterAttrs (n: _: n != "testService2") initialDistribution;
  serviceProperty = "type";
  targetPropertyList = "supportedTypes";
}
`, want: map[string][]string{"testService1": both, "testService3": both}},
		{name: "tryEval does not swallow a filter call", mode: "replay", qos: qosHead + `let
  r = builtins.tryEval (filters.divideRoundRobin { distribution = initialDistribution; });
in
if r.success then r.value else {}
`, want: map[string][]string{"testService1": t1, "testService2": t2, "testService3": t1}},
		// Custom filter catalogs (-F).
		{name: "catalog: keep the reference filters", filters: "{pkgs, referenceFilters}:\nreferenceFilters // { firstOnly = {distribution}: pkgs.lib.mapAttrs (n: ts: [ (builtins.head ts) ]) distribution; }\n",
			mode: "replay", qos: qosHead + "filters.firstOnly { distribution = filters.order { inherit infrastructure; distribution = initialDistribution; targetProperty = \"priority\"; }; }\n",
			want: map[string][]string{"testService1": t2, "testService2": t2, "testService3": t2}},
		{name: "catalog: a filter calling a reference filter", filters: "{pkgs, referenceFilters}:\n{ rr = {distribution}: referenceFilters.divideRoundRobin { inherit distribution; }; }\n",
			mode: "fast", qos: qosHead + "filters.rr { distribution = initialDistribution; }\n",
			want: map[string][]string{"testService1": t1, "testService2": t2, "testService3": t1}},
		{name: "catalog replaces the reference filters", filters: "{pkgs, referenceFilters}:\n{ }\n",
			qos: "qos-roundrobin.nix", wantErr: []string{"qos-roundrobin.nix", "divideRoundRobin", "missing"}},
		// --extra-params reach the model.
		{name: "extra params", extra: `{ prop = "priority"; }`, mode: "replay",
			qos:  "{services, infrastructure, initialDistribution, previousDistribution, filters, lib, prop}:\nfilters.order { inherit infrastructure; distribution = initialDistribution; targetProperty = prop; }\n",
			want: map[string][]string{"testService1": {"testtarget2", "testtarget1"}, "testService2": {"testtarget2", "testtarget1"}, "testService3": {"testtarget2", "testtarget1"}}},
	}
	for _, c := range cases {
		for _, noFast := range []bool{false, true} {
			name := c.name
			if noFast {
				name += "/replay only"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got, m, err := runNixQoS(t, c, noFast)
				if c.wantErr != nil {
					if err == nil {
						t.Fatalf("got %v, want an error", got)
					}
					for _, w := range c.wantErr {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("error %q lacks %q", err, w)
						}
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("got %v, want %v", got, c.want)
				}
				if !noFast {
					if c.mode == "fast" && m.rounds.Load() != 1 {
						t.Errorf("%d evaluations, want 1 (fast mode)", m.rounds.Load())
					}
					if c.mode == "replay" && m.Fast && m.rounds.Load() < 2 {
						t.Errorf("%d evaluations, want the replay mode", m.rounds.Load())
					}
				}
			})
		}
	}
}

// TestNixQoSBadInput: a model (or catalog filter) whose result is no
// distribution, that names an unknown filter or throws is an error naming
// the file, with Nix's position when Nix reports the error.
func TestNixQoSBadInput(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	cases := []nixQoSCase{
		{name: "function", qos: qosHead + "filters.divideRoundRobin\n", wantErr: []string{"model.nix", "returned a function"}},
		{name: "list", qos: qosHead + "[ initialDistribution ]\n", wantErr: []string{"model.nix", "returned a list"}},
		{name: "string", qos: qosHead + "\"testtarget1\"\n", wantErr: []string{"model.nix", "returned a string"}},
		{name: "unknown filter", qos: qosHead + "filters.noSuchFilter { distribution = initialDistribution; }\n",
			wantErr: []string{"model.nix", "noSuchFilter", "model.nix:2:"}},
		{name: "throws", qos: qosHead + "\nthrow \"no plan today\"\n", wantErr: []string{"model.nix", "no plan today", "model.nix:1:1"}},
		{name: "missing filter argument", qos: qosHead + "filters.order { distribution = initialDistribution; }\n",
			wantErr: []string{"model.nix", "without required argument 'infrastructure'", "model.nix:2:1"}},
		{name: "null", qos: qosHead + "previousDistribution\n", wantErr: []string{"model.nix", "returned null"}},
		{name: "not a function", qos: "{ steps = 1; }\n", wantErr: []string{"model.nix"}},
		{name: "model needs an unknown argument", qos: "{ filters, initialDistribution, nope }:\ninitialDistribution\n", wantErr: []string{"model.nix", "nope"}},
		{name: "catalog filter returns a function (the original's test catalog)", qos: "qos-clear.nix", filters: "customfilters.nix",
			wantErr: []string{"qos-clear.nix", "returned a function"}},
		{name: "catalog is no function", qos: "qos-roundrobin.nix", filters: "{ x = 1; }\n", wantErr: []string{"model.nix", "expected a function"}},
		{name: "catalog throws", qos: "qos-roundrobin.nix", filters: "{pkgs, referenceFilters}:\nthrow \"broken catalog\"\n", wantErr: []string{"broken catalog", "model.nix:1:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, _, err := runNixQoS(t, c, false)
			if err == nil {
				t.Fatalf("got %v, want an error", got)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestNixPolicyStillLoads: a .nix file evaluating to a policy attribute set
// (or a function of optional arguments returning one) is a policy, not a
// QoS model.
func TestNixPolicyStillLoads(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	for _, text := range []string{
		"{ steps = [ { filter = \"divideRoundRobin\"; } ]; }\n",
		"{ x ? 1 }: { steps = [ { filter = \"divideRoundRobin\"; } ]; }\n",
	} {
		p, err := DefaultRegistry().LoadQoS(nixQoSFile(t, text), NixModelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Steps) != 1 || p.Steps[0].Filter != "divideRoundRobin" {
			t.Errorf("%q: steps %+v", text, p.Steps)
		}
	}
	if _, err := DefaultRegistry().LoadQoS(nixQoSFile(t, "{ steps = [ ]; }\n"), NixModelOptions{Filters: "testdata/nixqos/customfilters.nix"}); err == nil || !strings.Contains(err.Error(), "filter catalog") {
		t.Errorf("-F with a policy: %v", err)
	}
}

func TestFastEligible(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		qosHead + "filters.divideRoundRobin { distribution = initialDistribution; }":                                                                              true,
		qosHead + "# comments may say == or ? or builtins\nfilters.order { inherit infrastructure; distribution = initialDistribution; targetProperty = \"p\"; }": true,
		qosHead + "let r = filters.x {}; in if r == {} then r else r":                                                                                             false,
		qosHead + "let r = filters.x {}; in if r ? a then r else r":                                                                                               false,
		qosHead + "(filters.x {}).a or initialDistribution":                                                                                                       false,
		qosHead + "builtins.mapAttrs (n: v: v) initialDistribution":                                                                                               false,
		qosHead + "lib.attrByPath [ \"a\" ] {} (filters.x {})":                                                                                                    false,
		qosHead + "with builtins; if isAttrs (filters.x {}) then 1 else 2":                                                                                        false,
		qosHead + "__isAttrs (filters.x {})":                                                                                                                      false,
	}
	for text, want := range cases {
		if got := fastEligible(text); got != want {
			t.Errorf("fastEligible(%q) = %v, want %v", text, got, want)
		}
	}
}

// TestNixQoSRecords: {target, container} records of the initial and the
// previous distribution reach the model as Nix attribute sets and survive
// the filters, in both modes.
func TestNixQoSRecords(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	t.Parallel()
	services, err := model.LoadServices("testdata/nixqos/services.json")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := model.LoadInfrastructure("testdata/nixqos/infrastructure.json")
	if err != nil {
		t.Fatal(err)
	}
	rec := model.Mapping{Target: "testtarget2", Container: "c", Record: true}
	initial := model.Distribution{
		"testService1": {rec, {Target: "testtarget1"}},
		"testService2": {{Target: "testtarget1"}, rec},
		"testService3": {rec},
	}
	previous := model.Distribution{"testService2": {rec}}
	q := nixQoSFile(t, qosHead+`let
  kept = filters.mapBoundServicesToPrevious { inherit services previousDistribution; distribution = initialDistribution; };
in
filters.divideRoundRobin { distribution = kept; }
`)
	want := model.Distribution{"testService1": {rec}, "testService2": {rec}, "testService3": {rec}}
	for _, fast := range []bool{true, false} {
		p, err := DefaultRegistry().LoadQoS(q, NixModelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Steps[0].impl.(*NixModel).Fast = fast
		res, err := p.Run(Input{Services: services, Infrastructure: infra, Initial: initial, Previous: previous})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res.Distribution, want) {
			t.Errorf("fast %v: got %v, want %v", fast, res.Distribution, want)
		}
	}
}
