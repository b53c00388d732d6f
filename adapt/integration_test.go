package adapt

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

// realAgent is a dydisnix-agent served in-process on a loopback port that
// can be taken off the network (crash of the machine as seen from the
// coordinator) and put back on the same address, while its processes keep
// running — a machine returning with stale services.
type realAgent struct {
	name string
	dir  string
	a    *agent.Agent
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func startAgent(t *testing.T, name, token string) *realAgent {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	a, err := agent.New(agent.Config{StateDir: dir, Token: []byte(token), StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ra := &realAgent{name: name, a: a, dir: dir}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ra.addr = ln.Addr().String()
	ra.serve(ln)
	t.Cleanup(func() { ra.down(); a.Close(true) })
	return ra
}

func (r *realAgent) serve(ln net.Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srv = &http.Server{Handler: r.a.Handler()}
	go r.srv.Serve(ln) //nolint:errcheck
}

func (r *realAgent) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

func (r *realAgent) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.serve(ln)
}

func (r *realAgent) target() *model.Target {
	return &model.Target{Name: r.name, Properties: map[string]any{"hostname": r.name, "agentURL": "http://" + r.addr}}
}

// running returns the services this agent runs.
func (r *realAgent) running() []string {
	var out []string
	for _, m := range r.a.Profile(context.Background()).Services {
		out = append(out, m.Service.Name)
	}
	return out
}

func infraWith(agents ...*realAgent) model.Infrastructure {
	infra := model.Infrastructure{}
	for _, a := range agents {
		infra[a.name] = a.target()
	}
	return infra
}

// TestIntegrationRealAgents drives the loop with the real planner and the
// agent deployer against real agents running real processes: deploy,
// graceful leave (state migrated), crash (state restored from the
// snapshot store), return with stale services (reconciled, no duplicate).
func TestIntegrationRealAgents(t *testing.T) {
	dir := t.TempDir()
	token := "integration-token-0123456789"
	script := `#!/bin/sh
[ -f "$DYDISNIX_STATE_DIR/data" ] || echo "$DYDISNIX_SERVICE born on $DYDISNIX_TARGET" > "$DYDISNIX_STATE_DIR/data"
exec sleep 600
`
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	testenv.WriteExecutable(t, filepath.Join(dir, "svc.sh"), script)
	svcFile := write("services.json", `{
  "store": {"name": "store", "type": "process", "pkg": "svc.sh", "deployState": true},
  "web":   {"name": "web", "type": "process", "pkg": "svc.sh", "dependsOn": ["store"]}
}`, 0o644)
	qosFile := write("qos.yaml", "steps:\n  - filter: divideRoundRobin\n", 0o644)

	a1, a2, a3 := startAgent(t, "t1", token), startAgent(t, "t2", token), startAgent(t, "t3", token)
	agents := map[string]*realAgent{"t1": a1, "t2": a2, "t3": a3}

	pass, err := rollout.New(rollout.Config{Models: rollout.Models{Services: svcFile, QoS: qosFile},
		StateDir: filepath.Join(dir, "coordinator"), Token: token, Logger: zap.NewNop(),
		Agents: &deployer.AgentTLS{InsecureHTTP: true}})
	if err != nil {
		t.Fatal(err)
	}
	src := make(ChanSource)
	reports := make(chan DeployReport, 20)
	tm := DefaultTiming()
	tm.InitialSettle, tm.Debounce, tm.Stabilise, tm.RemoveGrace = -1, 20*time.Millisecond, time.Second, 100*time.Millisecond
	tm.BackoffRandomization, tm.Resync = -1, 300*time.Millisecond
	l, err := New(Config{Source: src, Pass: pass, Timing: tm, OnDeploy: func(r DeployReport) { reports <- r }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	next := func(what string) DeployReport {
		t.Helper()
		select {
		case r := <-reports:
			if r.Result != "success" {
				t.Fatalf("%s: deploy failed: %s", what, r.Error)
			}
			return r
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: no deploy", what)
		}
		return DeployReport{}
	}
	where := func(svc string) string {
		t.Helper()
		var at []string
		for name, a := range agents {
			for _, s := range a.running() {
				if s == svc {
					at = append(at, name)
				}
			}
		}
		if len(at) != 1 {
			t.Fatalf("%s runs on %v, want exactly one target", svc, at)
		}
		return at[0]
	}
	data := func(svc, target string) string {
		b, err := os.ReadFile(filepath.Join(agents[target].dir, "state", svc, "data"))
		if err != nil {
			t.Fatalf("state of %s on %s: %v", svc, target, err)
		}
		return string(b)
	}

	// 1. fresh deploy over t1, t2
	src <- Snapshot{Infrastructure: infraWith(a1, a2)}
	next("fresh deploy")
	storeAt := where("store")
	want := data("store", storeAt)
	// The policy is pure: /explain runs it again on the deployed plan's input.
	rec := httptest.NewRecorder()
	l.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/explain", nil))
	var ex struct {
		Explanation struct {
			Services map[string]struct{ Final []string }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ex); err != nil || rec.Code != http.StatusOK || len(ex.Explanation.Services) != 2 {
		t.Fatalf("/explain = %d %s (%v)", rec.Code, rec.Body, err)
	}
	for s, e := range ex.Explanation.Services {
		if at := where(s); !slices.Equal(e.Final, []string{at}) {
			t.Errorf("/explain: %s finally on %v, deployed on %s", s, e.Final, at)
		}
	}

	// 2. graceful leave of the store's machine: migrated with its state
	rest := a1
	if storeAt == "t1" {
		rest = a2
	}
	src <- Snapshot{Infrastructure: infraWith(rest, a3), Events: []Event{{Kind: EventRemoved, Target: storeAt, Reason: "goodbye"}}}
	r := next("graceful leave")
	newAt := where("store")
	if newAt == storeAt || data("store", newAt) != want {
		t.Fatalf("store moved %s → %s, state %q, want %q (moved %v)", storeAt, newAt, data("store", newAt), want, r.Moved)
	}
	if got := agents[storeAt].running(); len(got) != 0 {
		t.Errorf("the departed machine still runs %v", got)
	}
	left := agents[storeAt]

	// 3. snapshot, then crash of the store's machine: restored elsewhere
	if err := pass.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	crashed := agents[newAt]
	crashed.down()
	var survivors []*realAgent
	for _, a := range []*realAgent{rest, a3} {
		if a != crashed {
			survivors = append(survivors, a)
		}
	}
	src <- Snapshot{Infrastructure: infraWith(append(survivors, left)...), Events: []Event{{Kind: EventRemoved, Target: crashed.name, Reason: "probe-failed"}}}
	next("crash")
	var afterCrash string
	for _, a := range append(survivors, left) {
		for _, s := range a.running() {
			if s == "store" {
				afterCrash = a.name
			}
		}
	}
	if afterCrash == "" || data("store", afterCrash) != want {
		t.Fatalf("store not restored from the snapshot after the crash (on %q)", afterCrash)
	}

	// 4. the crashed machine returns with its stale services: reconciled
	crashed.up(t)
	src <- Snapshot{Infrastructure: infraWith(rest, a3, left, crashed)}
	// (the machine that left gracefully is admitted first: it came back
	// earlier; each return waits for its stabilisation period)
	for reconciled := false; !reconciled; {
		r = next("return")
		for _, x := range r.Reconcile {
			reconciled = reconciled || x == crashed.name
		}
	}
	if got := data("store", where("store")); got != want {
		t.Errorf("store state after the return = %q, want %q", got, want)
	}
	for _, svc := range []string{"store", "web"} {
		where(svc) // fails on a duplicate
	}

	// 5. a machine drains without its goodbye reaching the coordinator
	// (discovery keeps reporting it): the resync's drain check finds it,
	// its services are moved away and its drain completes.
	victim := where("store")
	moved := make(chan bool, 1)
	go func() { moved <- agents[victim].a.Drain(context.Background(), 30*time.Second) }()
	for drained := false; !drained; {
		r = next("drain")
		drained = strings.Contains(strings.Join(r.Causes, ";"), "target "+victim+" removed (drain)")
	}
	select {
	case ok := <-moved:
		if !ok {
			t.Errorf("the drain of %s timed out", victim)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the drain of %s did not finish", victim)
	}
	if at := where("store"); at == victim || data("store", at) != want {
		t.Errorf("store after the drain on %s with %q", at, data("store", at))
	}

	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	done <- nil
}
