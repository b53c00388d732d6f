// Command testsvc is a tiny service used by the deployer's tests. Its first
// argument picks the role: kv (a key-value store persisting to
// DYDISNIX_STATE_DIR), web (a front end depending on kv), peer (a plain
// HTTP service) or fail (exits at once).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

func main() {
	role := "peer"
	if len(os.Args) > 1 {
		role = os.Args[1]
	}
	if role == "fail" {
		fmt.Fprintln(os.Stderr, "testsvc: failing on purpose")
		os.Exit(3)
	}
	port := os.Getenv("DYDISNIX_PROP_PORT")
	mux := http.NewServeMux()
	if role != "web" {
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	}
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "DYDISNIX_") {
				env[k] = v
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"env": env, "pid": os.Getpid()})
	})
	switch role {
	case "kv":
		file := filepath.Join(os.Getenv("DYDISNIX_STATE_DIR"), "data.json")
		var mu sync.Mutex
		data := map[string]string{}
		if b, err := os.ReadFile(file); err == nil {
			json.Unmarshal(b, &data)
		}
		mux.HandleFunc("/kv/", func(w http.ResponseWriter, r *http.Request) {
			k := strings.TrimPrefix(r.URL.Path, "/kv/")
			mu.Lock()
			defer mu.Unlock()
			if r.Method == http.MethodPut {
				b, _ := io.ReadAll(r.Body)
				data[k] = string(b)
				out, _ := json.Marshal(data)
				tmp := file + ".tmp"
				f, err := os.Create(tmp)
				if err == nil {
					f.Write(out)
					f.Sync()
					f.Close()
					err = os.Rename(tmp, file)
				}
				if err != nil {
					http.Error(w, err.Error(), 500)
				}
				return
			}
			v, ok := data[k]
			if !ok {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, v)
		})
		mux.HandleFunc("/checksum", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			b, _ := os.ReadFile(file)
			s := sha256.Sum256(b)
			fmt.Fprint(w, hex.EncodeToString(s[:]))
		})
	case "web":
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			addr := net.JoinHostPort(os.Getenv("DYDISNIX_DEP_KV_TARGET"), os.Getenv("DYDISNIX_DEP_KV_PORT"))
			c := http.Client{Timeout: time.Second}
			resp, err := c.Get("http://" + addr + "/health")
			if err != nil {
				http.Error(w, err.Error(), 503)
				return
			}
			resp.Body.Close()
			fmt.Fprintln(w, "ok")
		})
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "testsvc:", err)
		os.Exit(1)
	}
}
