// Command chord is the testbed's Chord-style ring, after Disnix's chord
// example: a bootstrap node (no dependency) and nodes that dependsOn it.
// Each node has an identifier (the first 8 bytes of SHA-1 of its host:port),
// joins the ring by asking the bootstrap node for its successor, and keeps
// its successor and predecessor by stabilizing every DYDISNIX_PROP_INTERVAL
// (milliseconds or a duration; default 500ms).
//
//	/healthz           200 once the node has joined the ring, else 503
//	/state             {"self", "successor", "predecessor", "joined"}
//	/ring              {"nodes": [...], "complete": bool}: the ring walked from this node
//	/find_successor    ?id=N: the node responsible for N
//	/notify            POST a node that may be our predecessor
//
// The bootstrap is the dependency named by DYDISNIX_PROP_BOOTSTRAP, else the
// only dependency; a node without dependencies starts a new ring. The node
// advertises DYDISNIX_PROP_HOST, else its target's address (see
// svcenv.Env.AdvertiseHost), with its port.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/dydisnix/dydisnix/testbed/services/internal/svcenv"
)

func main() {
	svcenv.Main("chord", run)
}

func run(ctx context.Context, env *svcenv.Env, logger *log.Logger) error {
	addr, err := env.ListenAddr()
	if err != nil {
		return err
	}
	interval, err := env.PropDuration("interval", 500*time.Millisecond)
	if err != nil {
		return err
	}
	bootstrap := ""
	if _, named := env.Prop("bootstrap"); named || len(env.Deps()) > 0 {
		name, err := env.Pick("bootstrap", "")
		if err != nil {
			return err
		}
		dep, err := env.Dep(name)
		if err != nil {
			return err
		}
		bootstrap = dep.Addr()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	// The identifier follows from the advertised address, which needs the
	// bound port (DYDISNIX_PROP_PORT may be 0).
	port := ln.Addr().(*net.TCPAddr).Port
	self := net.JoinHostPort(env.AdvertiseHost(), strconv.Itoa(port))
	// A request to a node that is gone (a crashed or cut-off machine) waits
	// this long; short, so a ring heals quickly after a redeploy.
	timeout, err := env.PropDuration("timeout", 500*time.Millisecond)
	if err != nil {
		return err
	}
	ring := NewRing(self, bootstrap, timeout, logger)
	if bootstrap == "" {
		logger.Printf("listening on %s; node %s (id %d) starts a new ring", ln.Addr(), self, ring.self.ID)
	} else {
		logger.Printf("listening on %s; node %s (id %d) joins via %s", ln.Addr(), self, ring.self.ID, bootstrap)
	}
	go ring.Run(ctx, interval)
	return svcenv.ServeListener(ctx, ln, handler(ring))
}

func handler(ring *Ring) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !ring.State().Joined {
			http.Error(w, "not joined yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		svcenv.JSON(w, http.StatusOK, ring.State())
	})
	mux.HandleFunc("GET /ring", func(w http.ResponseWriter, r *http.Request) {
		nodes, complete, err := ring.Walk(r.Context())
		out := map[string]any{"nodes": nodes, "complete": complete}
		if err != nil {
			out["error"] = err.Error()
		}
		svcenv.JSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /find_successor", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
		if err != nil {
			http.Error(w, "id: expected an unsigned integer", http.StatusBadRequest)
			return
		}
		hops, _ := strconv.Atoi(r.URL.Query().Get("hops"))
		n, err := ring.FindSuccessor(r.Context(), id, hops)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		svcenv.JSON(w, http.StatusOK, n)
	})
	mux.HandleFunc("POST /notify", func(w http.ResponseWriter, r *http.Request) {
		var n Node
		if err := jsonDecode(r, &n); err != nil || n.Addr == "" {
			http.Error(w, "expected a node {id, addr}", http.StatusBadRequest)
			return
		}
		n.ID = NodeID(n.Addr) // the identifier follows from the address
		ring.Notify(n)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
