package deployer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// TestProbe: one probe loop answers Probe, Health and Unreachable alike.
func TestProbe(t *testing.T) {
	t.Parallel()
	answer := func(code int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	target := func(name, url string) *model.Target {
		props := map[string]any{}
		if url != "" {
			props["agentURL"] = url
		}
		return &model.Target{Name: name, Properties: props, Extra: map[string]any{}}
	}
	infra := model.Infrastructure{
		"ok":       target("ok", answer(200, `{"status":"ok"}`)),
		"draining": target("draining", answer(200, `{"status":"draining","draining":true}`)),
		"denied":   target("denied", answer(401, `{"error":"unauthorized"}`)),
		"down":     target("down", down.URL),
		"noaddr":   target("noaddr", ""),
	}
	be := &deployer.AgentBackend{Token: "tok", TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	// Refused connections fail at once: the timeout is only a bound.
	const timeout = time.Minute
	ctx := context.Background()

	tests := []struct {
		target      string
		wantHealth  *agentapi.Health
		wantStatus  int // of an *agentapi.StatusError; 0: none
		unreachable bool
	}{
		{"ok", &agentapi.Health{Status: "ok"}, 0, false},
		{"draining", &agentapi.Health{Status: "draining", Draining: true}, 0, false},
		{"denied", nil, 401, false},
		{"down", nil, 0, true},
		{"noaddr", nil, 0, true},
	}
	probed := be.Probe(ctx, infra, "", timeout)
	health := be.Health(ctx, infra, "", timeout)
	unreach := be.Unreachable(ctx, nil, &model.Manifest{Infrastructure: infra}, timeout)
	if len(probed) != len(infra) {
		t.Errorf("Probe answered for %d targets, want %d", len(probed), len(infra))
	}
	for _, tc := range tests {
		r := probed[tc.target]
		if !reflect.DeepEqual(r.Health, tc.wantHealth) {
			t.Errorf("%s: Probe health %+v, want %+v", tc.target, r.Health, tc.wantHealth)
		}
		if (r.Err == nil) != (tc.wantHealth != nil) {
			t.Errorf("%s: Probe error %v", tc.target, r.Err)
		}
		if tc.wantStatus != 0 && !agentapi.IsStatus(r.Err, tc.wantStatus) {
			t.Errorf("%s: Probe error %v, want status %d", tc.target, r.Err, tc.wantStatus)
		}
		if got := health[tc.target]; !reflect.DeepEqual(got, tc.wantHealth) {
			t.Errorf("%s: Health %+v, want %+v", tc.target, got, tc.wantHealth)
		}
		if unreach[tc.target] != tc.unreachable {
			t.Errorf("%s: unreachable = %v, want %v", tc.target, unreach[tc.target], tc.unreachable)
		}
	}
}

// TestUnreachableSkipsLost: a target known to be lost is reported
// unreachable without a request to its address (a dead machine costs no
// probe timeout); the others are still probed.
func TestUnreachableSkipsLost(t *testing.T) {
	t.Parallel()
	hits := map[string]int{}
	var mu sync.Mutex
	serve := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name]++
			mu.Unlock()
			w.Write([]byte(`{"status":"ok"}`))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	infra := model.Infrastructure{}
	for _, n := range []string{"alive", "lost"} {
		infra[n] = &model.Target{Name: n, Properties: map[string]any{"agentURL": serve(n)}, Extra: map[string]any{}}
	}
	be := &deployer.AgentBackend{Token: "tok", TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	got := be.Unreachable(context.Background(), nil, &model.Manifest{Infrastructure: infra}, time.Minute, "lost", "unknown")
	if want := map[string]bool{"lost": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("unreachable = %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["lost"] != 0 || hits["alive"] != 1 {
		t.Errorf("probes: %v, want alive probed once and lost never", hits)
	}
}
