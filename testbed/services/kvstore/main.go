// Command kvstore is the testbed's stateful example service: an HTTP
// key-value store that persists every write durably (appended to a log in
// $DYDISNIX_STATE_DIR and fsynced before the reply) and reloads it on start.
//
//	PUT    /kv/<key>   store the request body (≤ 1 MiB) under key; 204
//	GET    /kv/<key>   the value, or 404
//	DELETE /kv/<key>   remove key; 204
//	GET    /kv/        the sorted list of keys (JSON)
//	GET    /checksum   hex SHA-256 of the whole store (see Store.Checksum)
//	GET    /stats      {"service", "target", "keys", "checksum"} (JSON)
//	GET    /healthz    200 "ok"
//
// It listens on DYDISNIX_PROP_BIND (else DYDISNIX_PROP_HOST, else 0.0.0.0)
// and DYDISNIX_PROP_PORT, and exits 0 on SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/dydisnix/dydisnix/testbed/services/internal/svcenv"
)

// maxValue bounds a value's size.
const maxValue = 1 << 20

func main() {
	svcenv.Main("kvstore", run)
}

func run(ctx context.Context, env *svcenv.Env, logger *log.Logger) error {
	if env.StateDir == "" {
		return errors.New(svcenv.VarStateDir + " is not set: kvstore keeps its data there (deployState = true)")
	}
	addr, err := env.ListenAddr()
	if err != nil {
		return err
	}
	store, err := Open(env.StateDir)
	if err != nil {
		return err
	}
	defer store.Close()
	sum, n := store.Checksum()
	logger.Printf("loaded %d keys from %s (checksum %s)", n, env.StateDir, sum)
	return svcenv.Serve(ctx, addr, handler(store, env), func(a net.Addr) { logger.Printf("listening on %s", a) })
}

func handler(store *Store, env *svcenv.Env) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /checksum", func(w http.ResponseWriter, r *http.Request) {
		sum, _ := store.Checksum()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, sum)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		sum, n := store.Checksum()
		svcenv.JSON(w, http.StatusOK, map[string]any{"service": env.Service, "target": env.Target, "keys": n, "checksum": sum})
	})
	mux.HandleFunc("GET /kv/{$}", func(w http.ResponseWriter, r *http.Request) {
		svcenv.JSON(w, http.StatusOK, store.Keys())
	})
	mux.HandleFunc("GET /kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := store.Get(r.PathValue("key"))
		if !ok {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	})
	put := func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if key == "" {
			http.Error(w, "empty key", http.StatusBadRequest)
			return
		}
		v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValue))
		if err != nil {
			http.Error(w, "value too large or unreadable: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := store.Put(key, v); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("PUT /kv/{key...}", put)
	mux.HandleFunc("POST /kv/{key...}", put)
	mux.HandleFunc("DELETE /kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		if err := store.Delete(r.PathValue("key")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
