package agentapi

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

type connKey struct{}

// TestClientResendsOnAClosedKeptAliveConnection: an agent that drops a
// kept-alive connection while a request goes out on it (its idle timeout
// racing the coordinator's next request) does not fail the step: the
// request is sent again on a new connection. A request on a new connection
// that fails is not repeated.
func TestClientResendsOnAClosedKeptAliveConnection(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	served := map[net.Conn]int{} // requests seen per connection
	dropped, activations := 0, 0
	dropFirst := true // drop the first request on a reused connection
	var put []byte    // the body of the last PUT served
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := r.Context().Value(connKey{}).(net.Conn)
		mu.Lock()
		served[conn]++
		drop := dropFirst && served[conn] > 1
		if drop {
			dropFirst = false
			dropped++
		} else if r.URL.Path == PathActivate {
			activations++
		}
		mu.Unlock()
		if !drop && r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			put = b
			mu.Unlock()
		}
		if drop {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }
	srv.Start()
	defer srv.Close()

	c := NewClient(srv.URL, "token", srv.Client())
	ctx := context.Background()
	if err := c.Lock(ctx, "owner"); err != nil {
		t.Fatal(err)
	}
	// The second request reuses the connection, which the agent drops.
	if err := c.Activate(ctx, ActivateRequest{Key: "k1", Service: model.ManifestService{Name: "s", Type: "process"}}); err != nil {
		t.Fatalf("activate after a dropped kept-alive connection: %v", err)
	}
	mu.Lock()
	if dropped != 1 || activations != 1 {
		t.Errorf("dropped %d, activations served %d; want 1 and 1", dropped, activations)
	}
	mu.Unlock()

	// A file body (a snapshot upload) is sent again from where it stood.
	file := filepath.Join(t.TempDir(), "snap")
	if err := os.WriteFile(file, []byte("headerSTATE"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(int64(len("header")), io.SeekStart)
	mu.Lock()
	dropFirst, dropped = true, 0
	mu.Unlock()
	if err := c.PutSnapshot(ctx, "s", "sha256:00", f); err != nil {
		t.Fatalf("snapshot upload after a dropped kept-alive connection: %v", err)
	}
	mu.Lock()
	if dropped != 1 || string(put) != "STATE" {
		t.Errorf("dropped %d, body served %q; want 1 and %q", dropped, put, "STATE")
	}
	mu.Unlock()

	// An agent that drops every request: one try on a new connection, an
	// error naming the agent.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		activations++
		mu.Unlock()
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}))
	defer bad.Close()
	c2 := NewClient(bad.URL, "token", bad.Client())
	mu.Lock()
	activations = 0
	mu.Unlock()
	err = c2.Activate(ctx, ActivateRequest{Key: "k1", Service: model.ManifestService{Name: "s", Type: "process"}})
	if err == nil || !strings.Contains(err.Error(), bad.URL) {
		t.Fatalf("activate on a dropping agent: %v, want an error naming %s", err, bad.URL)
	}
	mu.Lock()
	if activations != 1 {
		t.Errorf("a request on a new connection was sent %d times, want 1", activations)
	}
	mu.Unlock()
}

// An agent that closed every kept-alive connection at once: the request
// fails on one idle connection, then on the next, and is served on a new
// one.
func TestClientResendsWhileConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	served := map[net.Conn]int{}
	dropping, dropped, activations := false, 0, 0
	var arrived sync.WaitGroup
	arrived.Add(2)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := r.Context().Value(connKey{}).(net.Conn)
		mu.Lock()
		served[conn]++
		drop := dropping && served[conn] > 1
		if drop {
			dropped++
		} else if r.URL.Path == PathActivate {
			activations++
		}
		mu.Unlock()
		if r.URL.Path == PathLock {
			arrived.Done()
			arrived.Wait() // two requests at once: two connections to keep
		}
		if drop {
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }
	srv.Start()
	defer srv.Close()

	c := NewClient(srv.URL, "token", srv.Client())
	ctx := context.Background()
	var locks sync.WaitGroup
	for i := 0; i < 2; i++ {
		locks.Add(1)
		go func() {
			defer locks.Done()
			if err := c.Lock(ctx, "owner"); err != nil {
				t.Error(err)
			}
		}()
	}
	locks.Wait()
	mu.Lock()
	dropping = true
	mu.Unlock()
	if err := c.Activate(ctx, ActivateRequest{Key: "k1", Service: model.ManifestService{Name: "s", Type: "process"}}); err != nil {
		t.Fatalf("activate after the agent closed both kept-alive connections: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if dropped != 2 || activations != 1 {
		t.Errorf("dropped %d, activations served %d; want 2 and 1", dropped, activations)
	}
}

// TestClientReusesTheConnectionAfterAnswers: answers the client reads
// (JSON with the agent's trailing newline, small and chunked, an error,
// none) leave the kept-alive connection usable, so a coordinator polling
// its agents does not make a new TLS handshake per request.
func TestClientReusesTheConnectionAfterAnswers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case PathHealth:
			json.NewEncoder(w).Encode(Health{Status: "ok"})
		case PathProfile:
			p := Profile{}
			for i := 0; i < 2000; i++ { // larger than the server's buffer: chunked
				p.Services = append(p.Services, ProfileEntry{Key: strings.Repeat("k", 40)})
			}
			json.NewEncoder(w).Encode(p)
		case PathLock:
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(Error{Error: "locked"})
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewClient(srv.URL, "token", srv.Client())
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := c.Health(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Profile(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Lock(ctx, "owner"); !IsStatus(err, http.StatusConflict) {
			t.Fatalf("lock: %v, want 409", err)
		}
		if err := c.Unlock(ctx, "owner"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("12 requests one after another took %d connections, want 1", conns)
	}
}
