package reconstruct

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// fakeProfiles is a ProfileSource from fixed profiles (the agent-backed
// source is exercised by the deployer's integration tests).
type fakeProfiles map[string]*agentapi.Profile

func (f fakeProfiles) Profile(ctx context.Context, t *model.Target, defProp string) (*agentapi.Profile, error) {
	p, ok := f[t.Name]
	if !ok {
		return nil, errors.New("connection refused")
	}
	return p, nil
}

func infra(names ...string) model.Infrastructure {
	in := model.Infrastructure{}
	for _, n := range names {
		in[n] = &model.Target{Name: n, Properties: map[string]any{}, Extra: map[string]any{}}
	}
	return in
}

func entry(key, name string, deps ...model.ServiceMapping) agentapi.ProfileEntry {
	return agentapi.ProfileEntry{Key: key, Container: "process", Service: model.ManifestService{Name: name, Type: "process",
		DeployState: name == "db", DependsOn: append([]model.ServiceMapping{}, deps...), ConnectsTo: []model.ServiceMapping{}}}
}

func TestFromTargets(t *testing.T) {
	db := model.ServiceMapping{Service: "kdb", Target: "t1", Container: "process"}
	src := fakeProfiles{
		"t1": {Services: []agentapi.ProfileEntry{entry("kdb", "db")}},
		"t2": {Services: []agentapi.ProfileEntry{entry("kweb", "web", db), entry("kdb", "db")}},
	}
	res := FromTargets(context.Background(), infra("t1", "t2", "t3"), "", src)
	if _, ok := res.Unreachable["t3"]; !ok || len(res.Unreachable) != 1 {
		t.Errorf("unreachable = %v", res.Unreachable)
	}
	m := res.Manifest
	want := []model.ServiceMapping{{Service: "kdb", Target: "t1", Container: "process"}, {Service: "kdb", Target: "t2", Container: "process"}, {Service: "kweb", Target: "t2", Container: "process"}}
	if !reflect.DeepEqual(m.Mappings, want) {
		t.Errorf("mappings = %v", m.Mappings)
	}
	if len(m.Snapshots) != 2 || len(m.Services) != 2 {
		t.Errorf("snapshots %v services %d", m.Snapshots, len(m.Services))
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
	// A dependency on a target that did not answer gets a placeholder.
	res = FromTargets(context.Background(), infra("t2"), "", fakeProfiles{"t2": {Services: []agentapi.ProfileEntry{entry("kweb", "web", model.ServiceMapping{Service: "kzz", Target: "t9"})}}})
	if err := res.Manifest.Validate(); err != nil {
		t.Errorf("dangling dependency: %v", err)
	}
}

func TestMerge(t *testing.T) {
	old := &model.Manifest{Version: 1, Services: map[string]model.ManifestService{"a": {Name: "a", DependsOn: []model.ServiceMapping{}, ConnectsTo: []model.ServiceMapping{}}},
		Mappings: []model.ServiceMapping{{Service: "a", Target: "t1", Container: "process"}}, Infrastructure: infra("t1")}
	found := &model.Manifest{Version: 1, Services: map[string]model.ManifestService{
		"a": old.Services["a"],
		"s": {Name: "stale", DeployState: true, DependsOn: []model.ServiceMapping{}, ConnectsTo: []model.ServiceMapping{}}},
		Mappings:       []model.ServiceMapping{{Service: "a", Target: "t1", Container: "process"}, {Service: "s", Target: "t2", Container: "process"}},
		Infrastructure: infra("t1", "t2")}
	m := Merge(old, found)
	if len(m.Mappings) != 2 || m.Mappings[1].Target != "t2" || len(m.Snapshots) != 1 {
		t.Fatalf("merged = %+v", m)
	}
	if _, ok := m.Infrastructure["t2"]; !ok {
		t.Error("the reporting target's address is lost")
	}
	if len(old.Mappings) != 1 {
		t.Error("Merge changed its input")
	}
	if Merge(nil, found) != found || Merge(old, nil) != old {
		t.Error("nil handling")
	}
}
