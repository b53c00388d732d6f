// Command peer is the testbed's connectsTo example: two instances (peerA and
// peerB) that connectsTo each other. Each serves
//
//	/healthz  200 "ok"
//	/ping     {"service", "target", "time"} (JSON)
//	/status   {"service", "peer", "peerAddr", "successes", "failures", "lastError", "lastSuccess"} (JSON)
//
// and pings its peer every DYDISNIX_PROP_INTERVAL (milliseconds or a
// duration; default 1s). An absent or unreachable peer is counted and
// logged, never fatal: connectsTo gives no ordering guarantee. The peer is
// the dependency named by DYDISNIX_PROP_PEER, else the only dependency.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/testbed/services/internal/svcenv"
)

func main() {
	svcenv.Main("peer", run)
}

// status is what /status reports.
type status struct {
	Service     string    `json:"service"`
	Peer        string    `json:"peer"`
	PeerAddr    string    `json:"peerAddr"`
	Successes   int       `json:"successes"`
	Failures    int       `json:"failures"`
	LastError   string    `json:"lastError,omitempty"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	PeerService string    `json:"peerService,omitempty"`
}

func run(ctx context.Context, env *svcenv.Env, logger *log.Logger) error {
	addr, err := env.ListenAddr()
	if err != nil {
		return err
	}
	interval, err := env.PropDuration("interval", time.Second)
	if err != nil {
		return err
	}
	name, err := env.Pick("peer", "")
	if err != nil {
		return err
	}
	peer, err := env.Dep(name)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	st := status{Service: env.Service, Peer: name, PeerAddr: peer.Addr()}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		svcenv.JSON(w, http.StatusOK, map[string]any{"service": env.Service, "target": env.Target, "time": time.Now().UTC()})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		svcenv.JSON(w, http.StatusOK, st)
	})

	go func() {
		client := &http.Client{Timeout: interval + time.Second}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		lastOK := true
		for {
			var reply struct {
				Service string `json:"service"`
			}
			err := ping(ctx, client, "http://"+peer.Addr()+"/ping", &reply)
			mu.Lock()
			if err != nil {
				st.Failures++
				st.LastError = err.Error()
			} else {
				st.Successes++
				st.LastSuccess = time.Now().UTC()
				st.PeerService = reply.Service
			}
			mu.Unlock()
			if (err == nil) != lastOK {
				if err != nil {
					logger.Printf("peer %s at %s unreachable: %v", name, peer.Addr(), err)
				} else {
					logger.Printf("peer %s at %s answers", name, peer.Addr())
				}
				lastOK = err == nil
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return svcenv.Serve(ctx, addr, mux, func(a net.Addr) { logger.Printf("listening on %s, peer %s at %s", a, name, peer.Addr()) })
}

func ping(ctx context.Context, c *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
