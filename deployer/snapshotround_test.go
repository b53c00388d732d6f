package deployer_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// TestSnapshotAllBoundsTheRound: a snapshot round over three agents, with
// no global step bound and room for four steps per target, takes at most
// SnapshotParallel snapshots at once. Each snapshot request is held at its
// agent until as many as the bound are in (or every one has come), so
// without the bound the nine requests pile up past it. Later rounds copy
// only the snapshots that changed.
func TestSnapshotAllBoundsTheRound(t *testing.T) {
	const bound, total = 2, 9
	var (
		mu                      sync.Mutex
		cond                    = sync.NewCond(&mu)
		inflight, most, arrived int
		fetches                 int
		timedOut                bool
	)
	// A bound below the one asked for would hold the requests for ever:
	// after a minute they go on, and the test fails.
	stop := time.AfterFunc(time.Minute, func() {
		mu.Lock()
		timedOut = true
		cond.Broadcast()
		mu.Unlock()
	})
	defer stop.Stop()
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, agentapi.PathSnapshots) {
				mu.Lock()
				fetches++
				mu.Unlock()
			}
			mu.Lock()
			if r.URL.Path != agentapi.PathSnapshot || arrived >= total { // not held: other requests, later rounds
				mu.Unlock()
				next.ServeHTTP(w, r)
				return
			}
			inflight++
			arrived++
			most = max(most, inflight)
			cond.Broadcast()
			for inflight < bound && arrived < total && !timedOut {
				cond.Wait()
			}
			mu.Unlock()
			next.ServeHTTP(w, r)
			mu.Lock()
			inflight--
			mu.Unlock()
		})
	}
	c := newClusterWith(t, 3, hold)
	svcs, d := model.Services{}, model.Distribution{}
	for i := 0; i < total; i++ {
		name := fmt.Sprintf("kv%d", i)
		svcs[name] = svc(t, name, "kv", nil, nil, true)
		d[name] = []model.Mapping{{Target: fmt.Sprintf("t%d", i%3+1)}}
	}
	c.mustDeploy(svcs, d)
	latest, err := c.store.Latest()
	if err != nil {
		t.Fatal(err)
	}
	be := &deployer.AgentBackend{Token: c.be.Token, TLS: c.be.TLS, SnapshotParallel: bound}
	got, err := be.SnapshotAll(context.Background(), latest, c.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Errorf("SnapshotAll took %d snapshots, want %d", len(got), total)
	}
	mu.Lock()
	if most != bound || timedOut {
		t.Errorf("at most %d snapshots ran at once (held for a minute: %v), want %d (the bound, reached)", most, timedOut, bound)
	}
	mu.Unlock()

	// A second round over unchanged state renews the store's snapshots
	// without copying them; after a change only that one is copied.
	ctx := context.Background()
	mu.Lock()
	fetches = 0
	mu.Unlock()
	if _, err := be.SnapshotAll(ctx, latest, c.store, nil); err != nil {
		t.Fatal(err)
	}
	httpPut(t, svcs["kv4"], "/kv/x", "42")
	got, err = be.SnapshotAll(ctx, latest, c.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches != 1 {
		t.Errorf("two more rounds, one service changed: %d snapshots copied, want 1", fetches)
	}
	for _, info := range got {
		if want := 1 + btoi(info.Service == "kv4"); info.Generation != want {
			t.Errorf("%s: store generation %d, want %d", info.Service, info.Generation, want)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
