package rollout

import (
	"context"
	"path/filepath"
	"testing"
)

// TestProfilesReportHealthAndRestarts: the pass asks each agent for its
// profile (the status page's per-service health and restart counts); a
// target without an answering agent is left out.
func TestProfilesReportHealthAndRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t1 := startAgent(t, false)
	infra := agentsInfra(map[string]*testAgent{"t1": t1})
	cfg := Config{Models: testModels(t, dir), StateDir: filepath.Join(dir, "state"), Token: testToken, Agents: insecure}
	applyOnce(t, cfg, infra)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	infra["gone"] = infra["t1"].Clone()
	infra["gone"].Name = "gone"
	infra["gone"].Properties["agentURL"] = "http://127.0.0.1:1"
	got := p.Profiles(context.Background(), infra)
	if _, ok := got["gone"]; ok || got["t1"] == nil {
		t.Fatalf("profiles = %v, want t1's only", got)
	}
	svcs := got["t1"].Services
	if len(svcs) != 1 || svcs[0].Service.Name != "a" || !svcs[0].Running || svcs[0].Restarts != 0 {
		t.Fatalf("t1's profile = %+v, want a running, no restarts", svcs)
	}
}
