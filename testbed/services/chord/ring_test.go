package main

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

func TestBetween(t *testing.T) {
	t.Parallel()
	cases := []struct {
		x, a, b      uint64
		open, closed bool
	}{
		{5, 1, 10, true, true},
		{10, 1, 10, false, true},
		{1, 1, 10, false, false},
		{0, 10, 1, true, true}, // wraps
		{11, 10, 1, true, true},
		{5, 10, 1, false, false},
		{1, 10, 1, false, true},
		{3, 7, 7, true, true}, // whole ring but a
		{7, 7, 7, false, true},
	}
	for _, c := range cases {
		if got := between(c.x, c.a, c.b); got != c.open {
			t.Errorf("between(%d, %d, %d) = %v", c.x, c.a, c.b, got)
		}
		if got := betweenRight(c.x, c.a, c.b); got != c.closed {
			t.Errorf("betweenRight(%d, %d, %d) = %v", c.x, c.a, c.b, got)
		}
	}
}

func TestNotifyKeepsClosestPredecessor(t *testing.T) {
	t.Parallel()
	r := NewRing("127.0.0.1:1", "", 0, nil)
	self := r.self.ID
	far := Node{ID: self - 100, Addr: "far"}
	near := Node{ID: self - 1, Addr: "near"}
	r.Notify(far)
	r.Notify(near)
	r.Notify(far)
	r.Notify(r.self)
	if st := r.State(); st.Predecessor == nil || st.Predecessor.Addr != "near" {
		t.Errorf("predecessor %v, want near", st.Predecessor)
	}
}

// TestRingInProcess runs a bootstrap node and four joining nodes in this
// process (so the race detector sees the ring code) until every node walks
// one complete ring in identifier order; then one node leaves and the ring
// heals around it.
func TestRingInProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := log.New(io.Discard, "", 0)
	var rings []*Ring
	var servers []*httptest.Server
	var stops []context.CancelFunc
	boot := ""
	for i := 0; i < 5; i++ {
		srv := httptest.NewUnstartedServer(nil)
		r := NewRing(srv.Listener.Addr().String(), boot, time.Second, logger)
		srv.Config.Handler = handler(r)
		srv.Start()
		t.Cleanup(srv.Close)
		if boot == "" {
			boot = r.self.Addr
		}
		rings = append(rings, r)
		servers = append(servers, srv)
		rctx, stop := context.WithCancel(ctx)
		stops = append(stops, stop)
		go r.Run(rctx, 20*time.Millisecond)
	}
	waitRing := func(rs []*Ring) {
		t.Helper()
		for _, r := range rs {
			testenv.Eventually(t, time.Minute, func() bool {
				nodes, complete, _ := r.Walk(ctx)
				return complete && len(nodes) == len(rs) && clockwise(nodes)
			}, "no complete ring of %d from %s", len(rs), r.self.Addr)
		}
	}
	waitRing(rings)
	// Node 2 (not the bootstrap) disappears.
	stops[2]()
	servers[2].Close()
	waitRing(append(append([]*Ring{}, rings[:2]...), rings[3:]...))
}

// clockwise reports whether identifiers increase around the ring with
// exactly one wrap.
func clockwise(nodes []Node) bool {
	wraps := 0
	for i := range nodes {
		if nodes[(i+1)%len(nodes)].ID <= nodes[i].ID {
			wraps++
		}
	}
	return wraps == 1
}
