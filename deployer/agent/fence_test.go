package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
)

// fencedClient is a client of srv whose requests carry revision rev.
func fencedClient(url string, rev int64) *agentapi.Client {
	c := agentapi.NewClient(url, "tok", nil)
	c.Fence = func() int64 { return rev }
	return c
}

func TestFence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := New(Config{StateDir: dir, Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	ctx := context.Background()
	old, next := fencedClient(srv.URL, 5), fencedClient(srv.URL, 7)
	plain := agentapi.NewClient(srv.URL, "tok", nil)
	steps := []struct {
		name   string
		do     func() error
		fenced bool // refused as fenced (409 naming the revisions)
	}{
		{"old leader locks", func() error { return old.Lock(ctx, "old") }, false},
		{"old leader steps", func() error { return old.Deactivate(ctx, "absent") }, false},
		{"new leader locks: the deposed leader's lock is broken", func() error { return next.Lock(ctx, "new") }, false},
		{"old leader's late step", func() error { return old.Deactivate(ctx, "absent") }, true},
		{"old leader's lease renewal", func() error { return old.LockLease(ctx, "old", 30e9, true) }, true},
		{"old leader's unlock", func() error { return old.Unlock(ctx, "old") }, true},
		{"reads are not fenced", func() error { _, err := old.Health(ctx); return err }, false},
		{"new leader steps", func() error { return next.Deactivate(ctx, "absent") }, false},
		{"new leader unlocks", func() error { return next.Unlock(ctx, "new") }, false},
		{"a request without revision is not fenced", func() error { return plain.Lock(ctx, "single") }, false},
	}
	for _, s := range steps {
		err := s.do()
		got := err != nil && code(err) == http.StatusConflict && strings.Contains(err.Error(), "fenced: coordinator revision 5 is older than 7")
		if got != s.fenced || (!s.fenced && err != nil) {
			t.Fatalf("%s: fenced %v, want %v (err %v)", s.name, got, s.fenced, err)
		}
	}
	srv.Close()
	a.Close(true)

	// A restarted agent still refuses the deposed leader.
	a, err = New(Config{StateDir: dir, Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	if err := fencedClient(srv.URL, 5).Lock(ctx, "old"); code(err) != http.StatusConflict || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("deposed leader after a restart of the agent: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+agentapi.PathLock, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set(agentapi.HeaderFence, "x1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a malformed revision: %d, want 400", resp.StatusCode)
	}
}
