// Command webfront is the testbed's web front end: it depends on kvstore
// (dependsOn) and proxies /kv/ and /checksum to it.
//
//	/kv/...     proxied to the store
//	/checksum   proxied to the store
//	/healthz    200 when the store answers its /healthz, else 503
//	/           a short text page naming this front end and its store
//
// The store is the dependency named by DYDISNIX_PROP_STORE, else the only
// dependency, else "kvstore"; its address comes from the
// DYDISNIX_DEP_<STORE>_* variables (see svcenv.Env.Dep).
//
// With DYDISNIX_PROP_HEALTHGATE (the service property healthGate) naming a
// file, /healthz answers 503 while that file does not exist: a test holds a
// transition that starts this front end (the agent waits for its health
// check) for as long as it needs, instead of racing it.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"github.com/dydisnix/dydisnix/testbed/services/internal/svcenv"
)

func main() {
	svcenv.Main("webfront", run)
}

func run(ctx context.Context, env *svcenv.Env, logger *log.Logger) error {
	addr, err := env.ListenAddr()
	if err != nil {
		return err
	}
	name, err := env.Pick("store", "kvstore")
	if err != nil {
		return err
	}
	store, err := env.Dep(name)
	if err != nil {
		return err
	}
	logger.Printf("store %s at %s (target %s)", name, store.Addr(), store.Target)
	gate, _ := env.Prop("healthGate")
	h := handler(env, store, gate, logger)
	return svcenv.Serve(ctx, addr, h, func(a net.Addr) { logger.Printf("listening on %s", a) })
}

func handler(env *svcenv.Env, store svcenv.Dep, gate string, logger *log.Logger) http.Handler {
	base := &url.URL{Scheme: "http", Host: store.Addr()}
	proxy := httputil.NewSingleHostReverseProxy(base)
	proxy.ErrorLog = logger
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, fmt.Sprintf("store %s unreachable: %v", store.Addr(), err), http.StatusBadGateway)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	mux := http.NewServeMux()
	mux.Handle("/kv/", proxy)
	mux.Handle("GET /checksum", proxy)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if gate != "" {
			if _, err := os.Stat(gate); err != nil {
				http.Error(w, "held by the health gate: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		resp, err := client.Get(base.String() + "/healthz")
		if err != nil {
			http.Error(w, "store unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			http.Error(w, "store unhealthy: "+resp.Status, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s on %s: front end of %s at %s (target %s)\n", env.Service, env.Target, store.Service, store.Addr(), store.Target)
	})
	return mux
}
