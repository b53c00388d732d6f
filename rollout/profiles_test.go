package rollout

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
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

// TestDrainingProfilesAsksEachAgentOnce: the resync's drain check and
// profile poll are one profile request per agent; an agent whose profile
// does not say whether it drains (older than Profile.Draining) is asked
// /v1/health as well, and one that does not answer is left out of both.
func TestDrainingProfilesAsksEachAgentOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	type counts struct{ profile, health atomic.Int32 }
	counting := func(c *counts, older bool) func(*agent.Agent, http.Handler) http.Handler {
		return func(a *agent.Agent, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case agentapi.PathHealth:
					c.health.Add(1)
				case agentapi.PathProfile:
					c.profile.Add(1)
					if older && r.Header.Get("Authorization") == "Bearer "+testToken {
						p := a.Profile(r.Context())
						p.Draining = nil
						w.Header().Set("Content-Type", "application/json")
						json.NewEncoder(w).Encode(p)
						return
					}
				}
				h.ServeHTTP(w, r)
			})
		}
	}
	var newC, oldC counts
	draining := serveAgentVia(t, nil, counting(&newC, false))
	older := serveAgentVia(t, nil, counting(&oldC, true))
	cfg := Config{Models: testModels(t, dir), StateDir: filepath.Join(dir, "state"), Token: testToken, Agents: insecure}
	applyOnce(t, cfg, agentsInfra(map[string]*testAgent{"t1": draining}))
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan bool)
	go func() { drained <- draining.a.Drain(ctx, time.Minute) }()
	t.Cleanup(func() { cancel(); <-drained })
	testenv.Eventually(t, 10*time.Second, func() bool { return draining.a.Health().Draining }, "t1 never reported draining")
	newC.health.Store(0)

	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	infra := agentsInfra(map[string]*testAgent{"t1": draining, "t2": older})
	infra["gone"] = &model.Target{Name: "gone", Properties: map[string]any{"hostname": "gone", "agentURL": "http://127.0.0.1:1"}}
	d, profiles := p.DrainingProfiles(context.Background(), infra)
	if want := map[string]bool{"t1": true, "t2": false}; !maps.Equal(d, want) {
		t.Errorf("draining = %v, want %v", d, want)
	}
	if len(profiles) != 2 || profiles["t1"] == nil || profiles["t2"] == nil {
		t.Errorf("profiles of %v, want t1's and t2's", slices.Sorted(maps.Keys(profiles)))
	} else if s := profiles["t1"].Services; len(s) != 1 || s[0].Service.Name != "a" {
		t.Errorf("t1's profile = %+v, want a", s)
	}
	for _, c := range []struct {
		name            string
		c               *counts
		profile, health int32
	}{{"t1 (reports draining in its profile)", &newC, 1, 0}, {"t2 (older: it does not)", &oldC, 1, 1}} {
		if p, h := c.c.profile.Load(), c.c.health.Load(); p != c.profile || h != c.health {
			t.Errorf("%s was asked %d profiles and %d healths, want %d and %d", c.name, p, h, c.profile, c.health)
		}
	}
}
