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
	old, next, third := fencedClient(srv.URL, 5), fencedClient(srv.URL, 7), fencedClient(srv.URL, 9)
	plain := agentapi.NewClient(srv.URL, "tok", nil)
	const deposed5, deposed7 = "fenced: coordinator revision 5 is older than 7", "fenced: coordinator revision 7 is older than 9"
	steps := []struct {
		name   string
		do     func() error
		fenced string // "": accepted; else refused (409) with this message
	}{
		{"old leader locks", func() error { return old.Lock(ctx, "old") }, ""},
		{"old leader steps", func() error { return old.Deactivate(ctx, "absent") }, ""},
		{"new leader locks: the deposed leader's lock is broken", func() error { return next.Lock(ctx, "new") }, ""},
		{"old leader's late step", func() error { return old.Deactivate(ctx, "absent") }, deposed5},
		{"old leader's lease renewal", func() error { return old.LockLease(ctx, "old", 30e9, true) }, deposed5},
		{"old leader's unlock", func() error { return old.Unlock(ctx, "old") }, deposed5},
		{"old leader's fence", func() error { return old.RaiseFence(ctx) }, deposed5},
		{"reads are not fenced", func() error { _, err := old.Health(ctx); return err }, ""},
		{"new leader steps", func() error { return next.Deactivate(ctx, "absent") }, ""},
		{"new leader unlocks", func() error { return next.Unlock(ctx, "new") }, ""},
		{"a request without revision is not fenced", func() error { return plain.Lock(ctx, "single") }, ""},
		{"a third leader raises its fence without a step", func() error { return third.RaiseFence(ctx) }, ""},
		{"the second leader's late step", func() error { return next.Deactivate(ctx, "absent") }, deposed7},
	}
	for _, s := range steps {
		err := s.do()
		switch {
		case s.fenced == "" && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.fenced != "" && (code(err) != http.StatusConflict || !strings.Contains(err.Error(), s.fenced)):
			t.Fatalf("%s: %v, want 409 %q", s.name, err, s.fenced)
		}
	}
	if err := plain.RaiseFence(ctx); code(err) != http.StatusBadRequest {
		t.Fatalf("a fence without revision: %v, want 400", err)
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
	if err := fencedClient(srv.URL, 7).Lock(ctx, "old"); code(err) != http.StatusConflict || !strings.Contains(err.Error(), "fenced") {
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
