package deployer

import (
	"encoding/json"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func TestTargetAddress(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props map[string]any
		extra map[string]any
		def   string
		want  string
		err   bool
	}{
		{"agentURL", map[string]any{"agentURL": "http://10.0.0.2:7420/"}, nil, "", "http://10.0.0.2:7420", false},
		{"targetProperty names another", map[string]any{"hostname": "h", "agent": "h2:9000"}, map[string]any{"targetProperty": "agent"}, "", "http://h2:9000", false},
		{"host only gets the default port", map[string]any{"addr": "h3"}, nil, "addr", "http://h3:7420", false},
		{"falls back to agentURL", map[string]any{"agentURL": "https://x:1"}, map[string]any{"targetProperty": "hostname"}, "", "https://x:1", false},
		{"missing", map[string]any{"hostname": "h"}, nil, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := tc.extra
			if extra == nil {
				extra = map[string]any{}
			}
			got, err := TargetAddress(&model.Target{Name: "t", Properties: tc.props, Extra: extra}, tc.def)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("got %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestActivateRequestEnvironment(t *testing.T) {
	svcs := model.Services{
		"my-db": {Name: "my-db", Type: "echo", Attrs: map[string]any{"port": json.Number("5432"), "db.name": "x", "list": []any{"a"}}},
		"web":   {Name: "web", Type: "echo", DependsOn: []string{"my-db"}, ConnectsTo: []string{"peer"}, Attrs: map[string]any{"port": json.Number("80"), "debug": true}},
		"peer":  {Name: "peer", Type: "echo", Attrs: map[string]any{"port": json.Number("90")}},
	}
	infra := model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"agentURL": "http://10.1.0.1:7420", "zone": "a"}, Extra: map[string]any{}},
		"t2": {Name: "t2", Properties: map[string]any{"hostname": "t2.example"}, Extra: map[string]any{}},
	}
	man, err := BuildManifest(svcs, infra, model.Distribution{"my-db": {{Target: "t1"}}, "web": {{Target: "t2"}}, "peer": {{Target: "t2"}}}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var web model.ServiceMapping
	for _, m := range man.Mappings {
		if man.Services[m.Service].Name == "web" {
			web = m
		}
	}
	req := ActivateRequest(man, web)
	for k, want := range map[string]string{
		"DYDISNIX_SERVICE":              "web",
		"DYDISNIX_TARGET":               "t2",
		"DYDISNIX_PROP_PORT":            "80",
		"DYDISNIX_PROP_DEBUG":           "true",
		"DYDISNIX_DEP_MY_DB_PORT":       "5432",
		"DYDISNIX_DEP_MY_DB_DB_NAME":    "x",
		"DYDISNIX_DEP_MY_DB_TARGET":     "10.1.0.1",
		"DYDISNIX_DEP_MY_DB_TARGETNAME": "t1",
		"DYDISNIX_DEP_PEER_PORT":        "90",
		"DYDISNIX_DEP_PEER_TARGET":      "t2.example",
	} {
		if got := req.Env[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := req.Env["DYDISNIX_DEP_MY_DB_LIST"]; ok {
		t.Error("a list property became a variable")
	}
	dep := req.Context["dependsOn"].(map[string]any)["my-db"].(map[string]any)
	if locs := dep["targets"].([]any); len(locs) != 1 || locs[0].(map[string]any)["host"] != "10.1.0.1" {
		t.Errorf("context dependsOn: %v", dep)
	}
}
