package portassign

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// portSvcs builds a services model: name → portAssign value ("" = none).
func portSvcs(kinds map[string]string) model.Services {
	out := model.Services{}
	for name, k := range kinds {
		s := &model.Service{Name: name, Attrs: map[string]any{}}
		if k != "" {
			s.Attrs[DefaultPortServiceProperty] = k
		}
		out[name] = s
	}
	return out
}

func pool(last, min, max int64, m map[string]int64) *Pool {
	if m == nil {
		m = map[string]int64{}
	}
	return &Pool{LastPort: last, MinPort: min, MaxPort: max, ServicesToPorts: m}
}

func TestAssignPorts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		req      PortRequest
		want     string
		wantErr  string
		warnings int
	}{
		{
			name: "released port held back: the new service skips it",
			req: PortRequest{Services: portSvcs(map[string]string{"b": "shared", "c": "shared"}), Distribution: dist(map[string][]string{"b": {"t"}, "c": {"t"}}),
				Previous: &PortConfiguration{Global: pool(3002, 3000, 3003, map[string]int64{"a": 3003, "b": 3001}), Targets: map[string]*Pool{}}},
			want: `{"ports":{"b":3001,"c":3000},"portConfiguration":{"globalConfig":{"lastPort":3000,"maxPort":3003,"minPort":3000,"servicesToPorts":{"b":3001,"c":3000}},"targetConfigs":{}}}`,
		},
		{
			name: "pool exhausted is an error, not an endless search",
			req: PortRequest{Services: portSvcs(map[string]string{"a": "shared", "b": "shared", "c": "shared"}), Distribution: dist(map[string][]string{"a": {"t"}, "b": {"t"}, "c": {"t"}}),
				Previous: &PortConfiguration{Global: pool(3000, 3000, 3001, nil)}},
			wantErr: "port pool of global exhausted: no free port in 3000..3001 for service c",
		},
		{
			name: "shared port avoids private reservations (overlapping pools)",
			req: PortRequest{Services: portSvcs(map[string]string{"a": "private", "b": "shared"}), Distribution: dist(map[string][]string{"a": {"t"}, "b": {"t"}}),
				Previous: &PortConfiguration{Global: pool(5000, 5000, 5010, nil), Targets: map[string]*Pool{"t": pool(5000, 5000, 5010, map[string]int64{"a": 5001})}}},
			want: `{"ports":{"a":5001,"b":5002},"portConfiguration":{"globalConfig":{"lastPort":5002,"maxPort":5010,"minPort":5000,"servicesToPorts":{"b":5002}},"targetConfigs":{"t":{"lastPort":5000,"maxPort":5010,"minPort":5000,"servicesToPorts":{"a":5001}}}}}`,
		},
		{
			name: "moved private service keeps its old reservation and gets one on its new target",
			req: PortRequest{Services: portSvcs(map[string]string{"a": "private", "b": "private"}), Distribution: dist(map[string][]string{"a": {"t2"}, "b": {"t1"}}),
				Previous: &PortConfiguration{Targets: map[string]*Pool{"t1": pool(8001, 8000, 9000, map[string]int64{"a": 8001})}}},
			want: `{"ports":{"a":8001,"b":8002},"portConfiguration":{"targetConfigs":{"t1":{"lastPort":8002,"maxPort":9000,"minPort":8000,"servicesToPorts":{"a":8001,"b":8002}},"t2":{"lastPort":8001,"maxPort":9000,"minPort":8000,"servicesToPorts":{"a":8001}}}}}`,
		},
		{
			name: "pools of targets that host nothing are dropped; other values skipped",
			req: PortRequest{Services: portSvcs(map[string]string{"a": "private", "b": "dynamic", "c": ""}), Distribution: dist(map[string][]string{"a": {"t1"}, "b": {"t1"}, "c": {"t1"}}),
				Previous: &PortConfiguration{Targets: map[string]*Pool{"gone": pool(8005, 8000, 9000, map[string]int64{"x": 8005})}}},
			want: `{"ports":{"a":8001},"portConfiguration":{"targetConfigs":{"t1":{"lastPort":8001,"maxPort":9000,"minPort":8000,"servicesToPorts":{"a":8001}}}}}`,
		},
		{
			name:     "private service without a target: warning",
			req:      PortRequest{Services: portSvcs(map[string]string{"a": "private"}), Distribution: dist(map[string][]string{"a": {}})},
			want:     `{"ports":{},"portConfiguration":{"targetConfigs":{}}}`,
			warnings: 1,
		},
		{
			name: "duplicates in the previous file: first in sorted order keeps the port",
			req: PortRequest{Services: portSvcs(map[string]string{"a": "shared", "b": "shared"}), Distribution: dist(map[string][]string{"a": {"t"}, "b": {"t"}}),
				Previous: &PortConfiguration{Global: pool(3001, 3000, 4000, map[string]int64{"a": 3001, "b": 3001})}},
			want: `{"ports":{"a":3001,"b":3002},"portConfiguration":{"globalConfig":{"lastPort":3002,"maxPort":4000,"minPort":3000,"servicesToPorts":{"a":3001,"b":3002}},"targetConfigs":{}}}`,
		},
		{
			name: "custom property",
			req:  PortRequest{Services: model.Services{"a": &model.Service{Name: "a", Attrs: map[string]any{"ports": "shared"}}}, Distribution: dist(map[string][]string{"a": {"t"}}), ServiceProperty: "ports"},
			want: `{"ports":{"a":3001},"portConfiguration":{"globalConfig":{"lastPort":3001,"maxPort":4000,"minPort":3000,"servicesToPorts":{"a":3001}},"targetConfigs":{}}}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := tc.req.Previous.Clone()
			out, err := AssignPorts(tc.req)
			if tc.req.Previous != nil && mustJSON((&Ports{Config: before}).Value()) != mustJSON((&Ports{Config: tc.req.Previous}).Value()) {
				t.Errorf("AssignPorts modified its input")
			}
			if checkErr(t, err, tc.wantErr) {
				return
			}
			if got := mustJSON(out.Value()); !sameJSON(t, got, tc.want) {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if len(out.Warnings) != tc.warnings {
				t.Fatalf("warnings %q, want %d", out.Warnings, tc.warnings)
			}
		})
	}
}

// TestAssignPortsSticky runs generations of a changing system and checks:
// no duplicate shared port, no duplicate private port per target, a kept
// service keeps its port, and a port released in one generation is never
// handed to another service in the next.
func TestAssignPortsSticky(t *testing.T) {
	t.Parallel()
	var conf *PortConfiguration
	prevPorts := map[string]int64{}
	prevKinds := map[string]string{}
	for gen := 0; gen < 300; gen++ {
		kinds := map[string]string{}
		dm := map[string][]string{}
		for i := 0; i < 12; i++ {
			if (gen*7+i*5)%4 == 0 {
				continue // this service is absent in this generation
			}
			name := fmt.Sprintf("s%d", i)
			kinds[name] = []string{"shared", "private"}[i%2]
			dm[name] = []string{fmt.Sprintf("t%d", (i+gen/10)%3)}
		}
		if conf == nil {
			conf = &PortConfiguration{Global: pool(3000, 3000, 3009, nil), Targets: map[string]*Pool{}}
		}
		out, err := AssignPorts(PortRequest{Services: portSvcs(kinds), Distribution: dist(dm), Previous: conf})
		if err != nil {
			t.Fatalf("generation %d: %v", gen, err)
		}
		owner := map[int64]string{}
		for svc, p := range prevPorts {
			owner[p] = svc
		}
		shared := map[int64]bool{}
		private := map[string]map[int64]bool{}
		for svc, p := range out.Ports {
			if old, ok := prevPorts[svc]; ok && kinds[svc] == "shared" && old != p {
				t.Fatalf("generation %d: %s moved from port %d to %d", gen, svc, old, p)
			}
			if o, ok := owner[p]; ok && o != svc && kinds[svc] == "shared" && prevKinds[o] == "shared" {
				t.Fatalf("generation %d: port %d went from %s to %s", gen, p, o, svc)
			}
			if kinds[svc] == "shared" {
				if shared[p] {
					t.Fatalf("generation %d: shared port %d twice", gen, p)
				}
				shared[p] = true
				continue
			}
			tg := dm[svc][0]
			if private[tg] == nil {
				private[tg] = map[int64]bool{}
			}
			if private[tg][p] {
				t.Fatalf("generation %d: private port %d twice on %s", gen, p, tg)
			}
			private[tg][p] = true
		}
		prevPorts, prevKinds = out.Ports, kinds
		conf = out.Config
	}
}

func TestParsePortConfigErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"portConfiguration": {"globalConfig": {"lastPort": "x"}}}`:                "p.json: portConfiguration.globalConfig.lastPort: expected an integer",
		`{"portConfiguration": {"globalConfig": {"minPort": 10, "maxPort": 5}}}`:    "minPort 10 is greater than maxPort 5",
		`{"portConfiguration": {"targetConfigs": {"t": {"servicesToPorts": [1]}}}}`: "portConfiguration.targetConfigs.t.servicesToPorts: expected an attribute set",
		`{"portConfiguration": {"globalConfig": {"lastport": 1}}}`:                  "globalConfig.lastport: unknown pool attribute",
		`{"portConfiguration": {"other": {}}}`:                                      "portConfiguration.other: unknown attribute",
		`{"prots": {}}`:                                                             "prots: unknown section",
		`[]`:                                                                        "expected an attribute set",
	}
	for in, want := range cases {
		v, err := model.DecodeValue([]byte(in), model.FormatJSON, "p.json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePortConfig(v, "p.json"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	// Missing pool attributes take the defaults.
	v, _ := model.DecodeValue([]byte(`{"ports": {"x": 1}, "portConfiguration": {"globalConfig": {"servicesToPorts": {"a": 3001}}, "targetConfigs": {"t": {"maxPort": 8100}}}}`), model.FormatJSON, "")
	c, err := ParsePortConfig(v, "p.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON((&Ports{Ports: map[string]int64{}, Config: c}).Value()), `{"ports":{},"portConfiguration":{"globalConfig":{"lastPort":3000,"maxPort":4000,"minPort":3000,"servicesToPorts":{"a":3001}},"targetConfigs":{"t":{"lastPort":8000,"maxPort":8100,"minPort":8000,"servicesToPorts":{}}}}}`; !sameJSON(t, got, want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// sameJSON compares two JSON texts by value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	va, err := model.DecodeValue([]byte(a), model.FormatJSON, "")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := model.DecodeValue([]byte(b), model.FormatJSON, "")
	if err != nil {
		t.Fatal(err)
	}
	return model.Equal(va, vb)
}

// TestAssignPortsChurn replaces one shared service by a new one in every
// generation of a small pool, so the search wraps all the time: a port
// released in a generation must never go to the newcomer of that
// generation, and kept services keep their ports.
func TestAssignPortsChurn(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	live := []string{"s0", "s1", "s2", "s3"}
	next := 4
	conf := &PortConfiguration{Global: pool(3000, 3000, 3005, nil)}
	prev := map[string]int64{}
	for gen := 0; gen < 500; gen++ {
		gone := rng.IntN(len(live))
		released := prev[live[gone]]
		newcomer := fmt.Sprintf("s%d", next)
		next++
		live[gone] = newcomer
		kinds := map[string]string{}
		dm := map[string][]string{}
		for _, s := range live {
			kinds[s] = "shared"
			dm[s] = []string{"t"}
		}
		out, err := AssignPorts(PortRequest{Services: portSvcs(kinds), Distribution: dist(dm), Previous: conf})
		if err != nil {
			t.Fatalf("generation %d: %v", gen, err)
		}
		if gen > 0 && out.Ports[newcomer] == released {
			t.Fatalf("generation %d: port %d released by the removed service went to %s", gen, released, newcomer)
		}
		for _, s := range live {
			if old, ok := prev[s]; ok && out.Ports[s] != old {
				t.Fatalf("generation %d: %s moved from %d to %d", gen, s, old, out.Ports[s])
			}
		}
		prev, conf = out.Ports, out.Config
	}
}
