package deployer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// unhealthy is a process service whose health check never passes: its
// activation waits until it is interrupted (or the agent's start timeout).
func unhealthy(t *testing.T, name string) *model.Service {
	s := svc(t, name, "peer", nil, nil, false)
	port, _ := model.ScalarText(s.Attrs["port"])
	s.Attrs["healthCheck"] = "http://127.0.0.1:" + port + "/no-such-path"
	return s
}

// TestAgentLostLeaseStopsTheTransition: the agent forgets the lock while
// an activation is running (as when the lease expired and another
// coordinator could take it); the next renewal is refused and the
// transition stops at once: the activation is interrupted, its process
// stopped, and the error says which target's lease was lost. (Renewal
// errors used to be dropped: the transition went on without the lock.)
func TestAgentLostLeaseStopsTheTransition(t *testing.T) {
	c := newCluster(t, 1)
	c.be.Owner = "lease-test"
	c.be.LockRefresh = time.Millisecond // renew constantly: no waiting for a tick
	svcs := model.Services{"slow": unhealthy(t, "slow")}
	man, err := deployer.BuildManifest(svcs, c.infra, dist("slow", "t1"), deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ta := c.agents["t1"]
	var once sync.Once
	_, err = deployer.Deploy(context.Background(), c.be, c.store, plan, func(e deployer.StepEvent) {
		if e.Step.Kind == deployer.StepActivate && e.Phase == deployer.PhaseStart {
			// The lock disappears from under the coordinator.
			once.Do(func() {
				if err := ta.a.Unlock(context.Background(), "lease-test"); err != nil {
					t.Errorf("unlock on the agent: %v", err)
				}
			})
		}
	})
	var ce *deployer.CancelledError
	var lost *deployer.LeaseLostError
	if !errors.As(err, &ce) || !errors.As(err, &lost) || lost.Target != "t1" {
		t.Fatalf("error %v, want a cancellation caused by the lost lease on t1", err)
	}
	if !strings.Contains(err.Error(), "the lock lease on target t1 was lost") || ce.RollbackErr != nil {
		t.Errorf("error text: %v", err)
	}
	if len(ce.Interrupted) != 1 || ce.Interrupted[0].Kind != deployer.StepActivate {
		t.Errorf("interrupted %v, want the activation", ce.Interrupted)
	}
	if got := c.processes(); len(got) != 0 {
		t.Errorf("processes left after the stopped transition: %v", got)
	}
	if gens, _ := c.store.Generations(); len(gens) != 0 {
		t.Errorf("a stopped transition installed generations %v", gens)
	}
}

// silentAgent is a fake agent whose lock renewals are never answered and
// whose activations wait until the coordinator gives up on them.
type silentAgent struct {
	mu    sync.Mutex
	calls []string
}

func (f *silentAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Refresh bool   `json:"refresh"`
		Key     string `json:"key"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s refresh=%v", r.URL.Path, req.Refresh))
	f.mu.Unlock()
	switch {
	case r.URL.Path == agentapi.PathLock && req.Refresh, r.URL.Path == agentapi.PathActivate:
		<-r.Context().Done() // no answer: the client gives up
		return
	}
	w.Write([]byte(`{"status":"ok"}`))
}

// TestAgentUnansweredRenewalsLoseTheLease: renewals that get no answer for
// a whole lease (LockTTL) lose it: the transition stops and names the target.
func TestAgentUnansweredRenewalsLoseTheLease(t *testing.T) {
	t.Parallel()
	fake := &silentAgent{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": srv.URL}, Extra: map[string]any{}}}
	svcs := model.Services{"x": {Name: "x", Type: "echo", Attrs: map[string]any{}}}
	man, err := deployer.BuildManifest(svcs, infra, dist("x", "t1"), deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	be := &deployer.AgentBackend{Token: "tok", LockTTL: time.Second, LockRefresh: time.Millisecond, TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	// The deadline only keeps a broken renewal from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = be.Execute(ctx, plan, nil)
	var lost *deployer.LeaseLostError
	if !errors.As(err, &lost) || lost.Target != "t1" {
		t.Fatalf("error %v, want the lease on t1 lost", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for _, c := range fake.calls {
		if strings.HasPrefix(c, agentapi.PathUnlock) {
			t.Errorf("unlocked a lock whose lease was lost: %v", fake.calls)
		}
	}
}

// TestAgentLockOfOwnTransitionIsTakenOver: a target still locked by this
// coordinator (a transition of its own cut short by a coordinator or agent
// restart: the lock survives in lock.json) is locked again at once,
// without waiting for the lease; a lock of another owner still refuses
// (issue 11, fault matrix: upload/agent-kill and lock/coordinator-kill
// waited 30 s for the lease).
func TestAgentLockOfOwnTransitionIsTakenOver(t *testing.T) {
	for _, tc := range []struct {
		holder string
		ok     bool
	}{{"me", true}, {"someone-else", false}} {
		t.Run(tc.holder, func(t *testing.T) {
			c := newCluster(t, 1)
			c.be.Owner = "me"
			if err := c.agents["t1"].a.Lock(context.Background(), tc.holder, time.Hour, false); err != nil {
				t.Fatal(err)
			}
			svcs := model.Services{"p": svc(t, "p", "peer", nil, nil, false)}
			man, err := deployer.BuildManifest(svcs, c.infra, dist("p", "t1"), deployer.BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = deployer.Deploy(context.Background(), c.be, c.store, plan, nil)
			if tc.ok && err != nil {
				t.Fatalf("deploy over our own leftover lock: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "locked by someone-else")) {
				t.Fatalf("deploy over another owner's lock: %v, want a refusal naming the owner", err)
			}
		})
	}
}
