package qos

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func algNotes(ex *Explanation, s string) string {
	se := ex.Services[s]
	if se == nil {
		return ""
	}
	var b strings.Builder
	for _, n := range se.Notes {
		b.WriteString(n.Text)
		b.WriteString("\n")
	}
	return b.String()
}

func TestPreferPrevious(t *testing.T) {
	t.Parallel()
	ms := plainMappings
	infra := model.Infrastructure{
		"a": {Name: "a", Properties: map[string]any{"mem": algNum(10)}},
		"b": {Name: "b", Properties: map[string]any{"mem": algNum(10)}},
		"c": {Name: "c", Properties: map[string]any{"mem": algNum(10)}},
	}
	services := model.Services{}
	for n, mem := range map[string]int64{"s1": 6, "s2": 5, "s3": 3, "new": 1} {
		services[n] = &model.Service{Name: n, Attrs: map[string]any{"mem": algNum(mem)}}
	}
	cases := []struct {
		name      string
		params    Params
		prev      model.Distribution
		dist      model.Distribution
		want      model.Distribution
		notes     map[string]string // substring expected in the service's notes
		wantError string
	}{
		{
			name:   "kept, moved and new",
			params: Params{},
			prev:   model.Distribution{"s1": ms("a"), "s2": ms("gone"), "s3": ms("c", "b")},
			dist:   model.Distribution{"s1": ms("b", "a", "c"), "s2": ms("a", "b"), "s3": ms("a", "b", "c"), "new": ms("a", "b")},
			want:   model.Distribution{"s1": ms("a"), "s2": ms("a", "b"), "s3": ms("c", "b"), "new": ms("a", "b")},
			notes:  map[string]string{"s1": "kept on previous target(s) a", "s2": "moved: previous target(s) gone", "s3": "kept on previous target(s) c, b", "new": "new service"},
		},
		{
			name:   "partly moved",
			params: Params{},
			prev:   model.Distribution{"s1": ms("a", "gone")},
			dist:   model.Distribution{"s1": ms("b", "a")},
			want:   model.Distribution{"s1": ms("a")},
			notes:  map[string]string{"s1": "partly moved: previous target(s) gone"},
		},
		{
			name:   "capacity: the smaller services stay",
			params: Params{"serviceProperty": "mem", "targetProperty": "mem"},
			prev:   model.Distribution{"s1": ms("a"), "s2": ms("a"), "s3": ms("a")},
			dist:   model.Distribution{"s1": ms("a", "b"), "s2": ms("a", "b"), "s3": ms("a", "b")},
			want:   model.Distribution{"s1": ms("a", "b"), "s2": ms("a"), "s3": ms("a")},
			notes:  map[string]string{"s1": "moved off a: needs mem=6 but only mem=2 left there", "s2": "kept", "s3": "kept"},
		},
		{
			name:   "record candidates match previous targets by name",
			params: Params{},
			prev:   model.Distribution{"s1": {{Target: "b", Container: "c", Record: true}}},
			dist:   model.Distribution{"s1": {{Target: "a"}, {Target: "b", Container: "proc", Record: true}}},
			want:   model.Distribution{"s1": {{Target: "b", Container: "proc", Record: true}}},
		},
		{
			name:   "the candidate with the previous container wins",
			params: Params{},
			prev:   model.Distribution{"s1": {{Target: "b", Container: "c2", Record: true}}},
			dist:   model.Distribution{"s1": {{Target: "b", Container: "c1", Record: true}, {Target: "b", Container: "c2", Record: true}}},
			want:   model.Distribution{"s1": {{Target: "b", Container: "c2", Record: true}}},
		},
		{
			name:      "capacity: missing service property",
			params:    Params{"serviceProperty": "cpu", "targetProperty": "cpu"},
			prev:      model.Distribution{"s1": ms("a")},
			dist:      model.Distribution{"s1": ms("a")},
			wantError: "Service: s1 has no property named: cpu",
		},
		{
			name:   "no previous distribution",
			params: Params{},
			prev:   nil,
			dist:   model.Distribution{"s1": ms("a", "b")},
			want:   model.Distribution{"s1": ms("a", "b")},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := newPreferPrevious(c.params)
			if err != nil {
				t.Fatal(err)
			}
			env, ex := algEnv(services, infra, c.prev)
			out, err := f.Apply(env, FromDistribution(NewStrings(), c.dist))
			if c.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantError) {
					t.Fatalf("error %v, want %q", err, c.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Distribution(); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", algJSON(got), algJSON(c.want))
			}
			for s, want := range c.notes {
				if got := algNotes(ex, s); !strings.Contains(got, want) {
					t.Errorf("%s notes %q, want %q", s, got, want)
				}
			}
		})
	}
}

// TestPreferPreviousNothingChanged: when the previous distribution is a
// choice among the current candidates and capacities are those the previous
// placement respected, nothing moves.
func TestPreferPreviousNothingChanged(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 17))
	for iter := 0; iter < 200; iter++ {
		nS, nT := 1+rng.IntN(20), 1+rng.IntN(6)
		infra := model.Infrastructure{}
		var targets []string
		for j := 0; j < nT; j++ {
			n := fmt.Sprintf("t%d", j)
			targets = append(targets, n)
		}
		services := model.Services{}
		dist, prev := model.Distribution{}, model.Distribution{}
		load := map[string]int64{}
		for i := 0; i < nS; i++ {
			n := fmt.Sprintf("s%02d", i)
			req := int64(rng.IntN(8))
			services[n] = &model.Service{Name: n, Attrs: map[string]any{"mem": algNum(req)}}
			var cands []model.Mapping
			for _, tn := range targets {
				if rng.IntN(2) == 0 {
					cands = append(cands, model.Mapping{Target: tn})
				}
			}
			if len(cands) == 0 {
				cands = []model.Mapping{{Target: targets[0]}}
			}
			rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
			dist[n] = cands
			p := cands[rng.IntN(len(cands))]
			prev[n] = []model.Mapping{p}
			load[p.Target] += req
		}
		for _, tn := range targets {
			infra[tn] = &model.Target{Name: tn, Properties: map[string]any{"mem": algNum(load[tn] + int64(rng.IntN(3)))}}
		}
		for _, params := range []Params{{}, {"serviceProperty": "mem", "targetProperty": "mem"}} {
			f, err := newPreferPrevious(params)
			if err != nil {
				t.Fatal(err)
			}
			env, ex := algEnv(services, infra, prev)
			out, err := f.Apply(env, FromDistribution(NewStrings(), dist))
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Distribution(); !reflect.DeepEqual(got, prev) {
				t.Fatalf("iter %d %v: moved services: got %v, previous %v", iter, params, algJSON(got), algJSON(prev))
			}
			for s := range services {
				if n := algNotes(ex, s); strings.Contains(n, "moved") {
					t.Fatalf("iter %d: %s noted as moved: %s", iter, s, n)
				}
			}
		}
	}
}

// TestPreferPreviousExplainPipeline runs a policy through the pipeline with
// explanations and checks that --explain reports the moved services.
func TestPreferPreviousExplainPipeline(t *testing.T) {
	t.Parallel()
	pol, err := ParsePolicy([]byte(`{"steps": [
		{"filter": "preferPrevious", "name": "stay"},
		{"filter": "divide", "strategy": "greedy", "serviceProperty": "mem", "targetProperty": "mem"}]}`), model.FormatJSON, "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	services := model.Services{
		"a": {Name: "a", Attrs: map[string]any{"mem": algNum(1)}},
		"b": {Name: "b", Attrs: map[string]any{"mem": algNum(1)}},
	}
	infra := model.Infrastructure{ // t2 left the network
		"t1": {Name: "t1", Properties: map[string]any{"mem": algNum(10)}},
		"t3": {Name: "t3", Properties: map[string]any{"mem": algNum(10)}},
	}
	prev := model.Distribution{"a": {{Target: "t3"}}, "b": {{Target: "t2"}}}
	res, err := pol.Run(Input{Services: services, Infrastructure: infra, Previous: prev, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	want := model.Distribution{"a": {{Target: "t3"}}, "b": {{Target: "t1"}}}
	if !reflect.DeepEqual(res.Distribution, want) {
		t.Fatalf("got %s, want %s", algJSON(res.Distribution), algJSON(want))
	}
	var b strings.Builder
	if err := res.Explanation.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, w := range []string{"kept on previous target(s) t3", "moved: previous target(s) t2 no longer a candidate", "placed on t1"} {
		if !strings.Contains(text, w) {
			t.Errorf("explanation lacks %q:\n%s", w, text)
		}
	}
}

// TestPreferPreviousThenDividePinnedFirst: a kept service sorts after a
// moved one that could take its room; divide with pinnedFirst gives the kept
// service its capacity first, the reference order would fail.
func TestPreferPreviousThenDividePinnedFirst(t *testing.T) {
	t.Parallel()
	services := model.Services{
		"a-moved": {Name: "a-moved", Attrs: map[string]any{"mem": algNum(6)}},
		"z-kept":  {Name: "z-kept", Attrs: map[string]any{"mem": algNum(6)}},
	}
	infra := model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"mem": algNum(10)}},
		"t2": {Name: "t2", Properties: map[string]any{"mem": algNum(10)}},
	}
	prev := model.Distribution{"a-moved": {{Target: "gone"}}, "z-kept": {{Target: "t1"}}}
	for _, c := range []struct {
		pinned  bool
		want    model.Distribution
		wantErr string
	}{
		{false, nil, "Unable to select a target machine for service: z-kept"},
		{true, model.Distribution{"a-moved": {{Target: "t2"}}, "z-kept": {{Target: "t1"}}}, ""},
	} {
		pol, err := ParsePolicy([]byte(fmt.Sprintf(`{"steps": [
			{"filter": "preferPrevious", "serviceProperty": "mem", "targetProperty": "mem"},
			{"filter": "divide", "strategy": "greedy", "serviceProperty": "mem", "targetProperty": "mem", "pinnedFirst": %v}]}`, c.pinned)), model.FormatJSON, "policy.json")
		if err != nil {
			t.Fatal(err)
		}
		res, err := pol.Run(Input{Services: services, Infrastructure: infra, Previous: prev})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("pinnedFirst=%v: error %v, want %q", c.pinned, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("pinnedFirst=%v: %v", c.pinned, err)
		}
		if !reflect.DeepEqual(res.Distribution, c.want) {
			t.Fatalf("pinnedFirst=%v: got %s, want %s", c.pinned, algJSON(res.Distribution), algJSON(c.want))
		}
	}
}
