package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// maxHops bounds lookups and ring walks.
const maxHops = 64

// Node names a ring member: its identifier and its host:port.
type Node struct {
	ID   uint64 `json:"id"`
	Addr string `json:"addr"`
}

// NodeID is the identifier of the node at addr: the first 8 bytes of the
// SHA-1 of "host:port", as in Chord.
func NodeID(addr string) uint64 {
	sum := sha1.Sum([]byte(addr))
	return binary.BigEndian.Uint64(sum[:8])
}

// between reports whether x lies strictly between a and b going clockwise.
// With a == b the interval is the whole ring except a.
func between(x, a, b uint64) bool {
	switch {
	case a < b:
		return a < x && x < b
	case a > b:
		return x > a || x < b
	}
	return x != a
}

// betweenRight reports whether x lies in (a, b] clockwise; (a, a] is the
// whole ring.
func betweenRight(x, a, b uint64) bool {
	return x == b || between(x, a, b)
}

// State is what /state reports.
type State struct {
	Self        Node  `json:"self"`
	Successor   Node  `json:"successor"`
	Predecessor *Node `json:"predecessor,omitempty"`
	Joined      bool  `json:"joined"`
}

// Ring is one Chord node: it keeps its successor and predecessor, joins via
// a bootstrap node, and stabilizes periodically (successor's predecessor,
// notify, predecessor liveness). Lookups walk successors (no finger table:
// the testbed's rings are small).
type Ring struct {
	self      Node
	bootstrap string // host:port of the bootstrap node, "" for the bootstrap itself
	client    *http.Client
	logger    *log.Logger

	mu        sync.Mutex
	succ      Node
	pred      *Node
	joined    bool
	succFails int
}

// NewRing makes a node at addr; bootstrap is "" for the ring's first node.
func NewRing(addr, bootstrap string, timeout time.Duration, logger *log.Logger) *Ring {
	self := Node{ID: NodeID(addr), Addr: addr}
	r := &Ring{self: self, bootstrap: bootstrap, client: &http.Client{Timeout: timeout}, logger: logger, succ: self}
	if bootstrap == "" {
		r.joined = true
	}
	return r
}

// State returns the node's state.
func (r *Ring) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := State{Self: r.self, Successor: r.succ, Joined: r.joined}
	if r.pred != nil {
		p := *r.pred
		st.Predecessor = &p
	}
	return st
}

// Run joins the ring (retrying until it succeeds) and stabilizes every
// interval until ctx is cancelled.
func (r *Ring) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if !r.State().Joined {
			if err := r.join(ctx); err != nil {
				r.logger.Printf("join via %s: %v (retrying)", r.bootstrap, err)
			}
		} else {
			r.stabilize(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Ring) join(ctx context.Context) error {
	var succ Node
	if err := r.get(ctx, r.bootstrap, "/find_successor?id="+strconv.FormatUint(r.self.ID, 10), &succ); err != nil {
		return err
	}
	r.mu.Lock()
	r.succ, r.joined, r.succFails = succ, true, 0
	r.mu.Unlock()
	r.logger.Printf("joined the ring via %s: successor %s", r.bootstrap, succ.Addr)
	r.notify(ctx, succ)
	return nil
}

func (r *Ring) stabilize(ctx context.Context) {
	st := r.State()
	// Predecessor liveness.
	if st.Predecessor != nil && st.Predecessor.ID != r.self.ID {
		if err := r.get(ctx, st.Predecessor.Addr, "/healthz", nil); err != nil && ctx.Err() == nil {
			r.mu.Lock()
			if r.pred != nil && r.pred.ID == st.Predecessor.ID {
				r.pred = nil
			}
			r.mu.Unlock()
		}
	}
	var x *Node
	if st.Successor.ID == r.self.ID {
		x = st.Predecessor
	} else {
		var ss State
		if err := r.get(ctx, st.Successor.Addr, "/state", &ss); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.succFails++
			if r.succFails >= 3 {
				r.logger.Printf("successor %s lost: %v", st.Successor.Addr, err)
				r.succ, r.succFails = r.self, 0
				if r.bootstrap != "" {
					r.joined = false // rejoin through the bootstrap
				}
			}
			r.mu.Unlock()
			return
		}
		x = ss.Predecessor
	}
	r.mu.Lock()
	r.succFails = 0
	if x != nil && x.ID != r.self.ID && (r.succ.ID == r.self.ID || between(x.ID, r.self.ID, r.succ.ID)) {
		r.succ = *x
	}
	succ := r.succ
	r.mu.Unlock()
	if succ.ID != r.self.ID {
		r.notify(ctx, succ)
	}
}

func (r *Ring) notify(ctx context.Context, to Node) {
	body, _ := json.Marshal(r.self)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+to.Addr+"/notify", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
}

// Notify handles n's claim to be our predecessor.
func (r *Ring) Notify(n Node) {
	if n.ID == r.self.ID {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pred == nil || between(n.ID, r.pred.ID, r.self.ID) {
		r.pred = &n
	}
}

// FindSuccessor returns the node responsible for id, forwarding the query
// along successors.
func (r *Ring) FindSuccessor(ctx context.Context, id uint64, hops int) (Node, error) {
	st := r.State()
	if !st.Joined {
		return Node{}, errors.New("not joined yet")
	}
	if st.Successor.ID == r.self.ID || betweenRight(id, r.self.ID, st.Successor.ID) {
		return st.Successor, nil
	}
	if hops >= maxHops {
		return Node{}, fmt.Errorf("lookup of %d exceeded %d hops", id, maxHops)
	}
	var n Node
	q := url.Values{"id": {strconv.FormatUint(id, 10)}, "hops": {strconv.Itoa(hops + 1)}}
	if err := r.get(ctx, st.Successor.Addr, "/find_successor?"+q.Encode(), &n); err != nil {
		return Node{}, err
	}
	return n, nil
}

// Walk follows successors from this node and returns the ring in order;
// complete is true when the walk came back to this node.
func (r *Ring) Walk(ctx context.Context) (nodes []Node, complete bool, err error) {
	st := r.State()
	nodes = []Node{st.Self}
	next := st.Successor
	for len(nodes) <= maxHops {
		if next.ID == r.self.ID {
			return nodes, true, nil
		}
		nodes = append(nodes, next)
		var ns State
		if err := r.get(ctx, next.Addr, "/state", &ns); err != nil {
			return nodes, false, err
		}
		next = ns.Successor
	}
	return nodes, false, nil
}

func (r *Ring) get(ctx context.Context, addr, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s%s: %s", addr, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
