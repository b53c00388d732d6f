package agent

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/clock"
)

// snapshotDigest returns the "sha256:<hex>" digest of data.
func snapshotDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestRestoreSymlinkChainStaysInside reproduces finding 2 of the trust
// review: a chain of relative symlinks each of which stays inside the
// state directory lexically (a/up -> .., esc -> a/up/.., esc2 -> esc/..)
// followed by a regular file esc2/X wrote X two levels above the state
// directory. A hard link to a file outside is refused as well.
func TestRestoreSymlinkChainStaysInside(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
	}{
		{"symlink chain", []*tar.Header{
			{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o700},
			{Name: "a/up", Typeflag: tar.TypeSymlink, Linkname: ".."},
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "a/up/.."},
			{Name: "esc2", Typeflag: tar.TypeSymlink, Linkname: "esc/.."},
			{Name: "esc2/X", Typeflag: tar.TypeReg, Mode: 0o600, Size: 4},
		}},
		{"symlink chain, directory", []*tar.Header{
			{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o700},
			{Name: "a/up", Typeflag: tar.TypeSymlink, Linkname: ".."},
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "a/up/.."},
			{Name: "esc2", Typeflag: tar.TypeSymlink, Linkname: "esc/.."},
			{Name: "esc2/X/", Typeflag: tar.TypeDir, Mode: 0o700},
		}},
		{"hard link out", []*tar.Header{
			{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o700},
			{Name: "a/up", Typeflag: tar.TypeSymlink, Linkname: ".."},
			{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "a/up/.."},
			{Name: "esc2", Typeflag: tar.TypeSymlink, Linkname: "esc/.."},
			{Name: "h", Typeflag: tar.TypeLink, Linkname: "esc2/profile.json"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, c := newAgent(t)
			ctx := context.Background()
			data := tarball(tc.entries...)
			d := snapshotDigest(data)
			if err := c.PutSnapshot(ctx, "db", d, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			err := c.Restore(ctx, "db", d)
			if err == nil {
				t.Error("restore of an escaping archive succeeded")
			}
			if _, serr := os.Lstat(filepath.Join(a.cfg.StateDir, "X")); serr == nil {
				t.Fatalf("restore wrote %s outside the state directory (restore error: %v)", filepath.Join(a.cfg.StateDir, "X"), err)
			}
			if _, serr := os.Lstat(filepath.Join(a.cfg.StateDir, "state", "db")); serr == nil {
				t.Error("a refused restore left a state directory")
			}
		})
	}
}

// TestRestoreExtractionLimits covers finding 5: a small tar.gz whose
// entries claim gigabytes is refused before anything is written, and so is
// one with more entries than allowed.
func TestRestoreExtractionLimits(t *testing.T) {
	t.Parallel()
	t.Run("3 GiB in 3 MB", func(t *testing.T) {
		t.Parallel()
		a, c := newAgent(t)
		// A header claiming 3 GiB followed by 3 MB of zeros (the rest of
		// the stream is never read: the size alone exceeds the default limit).
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3 << 30})
		tw.Write(make([]byte, 3<<20))
		tw.Flush()
		gz.Close()
		data := buf.Bytes()
		d := snapshotDigest(data)
		ctx := context.Background()
		if err := c.PutSnapshot(ctx, "db", d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		err := c.Restore(ctx, "db", d)
		if code(err) != 413 || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("restore of a 3 GiB archive: %v, want 413 naming the limit", err)
		}
		if fi, err := os.Stat(filepath.Join(a.cfg.StateDir, "state", "db", "big")); err == nil {
			t.Errorf("the oversized entry was written (%d bytes)", fi.Size())
		}
	})
	t.Run("entries", func(t *testing.T) {
		t.Parallel()
		a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok"), MaxEntries: 10})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(true)
		var hs []*tar.Header
		for i := range 11 {
			hs = append(hs, &tar.Header{Name: "f" + string(rune('a'+i)), Typeflag: tar.TypeReg, Mode: 0o600, Size: 1})
		}
		data := tarball(hs...)
		d := snapshotDigest(data)
		if err := a.PutSnapshot("db", strings.TrimPrefix(d, "sha256:"), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if err := a.Restore(context.Background(), agentapi.RestoreRequest{Service: "db", Digest: d}); err == nil || !strings.Contains(err.Error(), "10 entries") {
			t.Fatalf("restore of 11 entries with a limit of 10: %v", err)
		}
	})
}

// TestUploadLimit covers finding 5 for uploads: an artifact or snapshot
// larger than MaxUpload is refused with 413, whether its length is
// announced (refused before reading) or not (refused once past the limit).
func TestUploadLimit(t *testing.T) {
	t.Parallel()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok"), MaxUpload: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	c := agentapi.NewClient(srv.URL, "tok", nil)
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 4096)
	d := snapshotDigest(big)
	if err := c.PutSnapshot(ctx, "db", d, bytes.NewReader(big)); code(err) != 413 {
		t.Errorf("snapshot of 4096 bytes with a 1024 limit (length announced): %v, want 413", err)
	}
	if err := c.PutSnapshot(ctx, "db", d, io.MultiReader(bytes.NewReader(big))); code(err) != 413 {
		t.Errorf("snapshot of 4096 bytes with a 1024 limit (chunked): %v, want 413", err)
	}
	file := filepath.Join(t.TempDir(), "exe")
	os.WriteFile(file, big, 0o755)
	if _, err := c.UploadArtifact(ctx, d, file); code(err) != 413 || !strings.Contains(err.Error(), "--max-upload") {
		t.Errorf("artifact of 4096 bytes with a 1024 limit: %v, want 413 naming the limit", err)
	}
	small := []byte("ok")
	if err := c.PutSnapshot(ctx, "db", snapshotDigest(small), bytes.NewReader(small)); err != nil {
		t.Errorf("small upload: %v", err)
	}
}

// countingListener reports the connections open at once.
type countingListener struct {
	net.Listener
	mu        sync.Mutex
	open, max int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.max = max(l.max, l.open)
	l.mu.Unlock()
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.mu.Lock(); c.l.open--; c.l.mu.Unlock() })
	return c.Conn.Close()
}

// TestIdleConnectionsBounded covers finding 4: keep-alive connections
// left idle by a client without the token (each made one request, got
// 401 and stays open) were never closed, so enough of them exhausted the
// agent's file descriptors and the authenticated health check timed out.
// Now at most MaxConns are served at once, idle ones are closed after
// IdleTimeout, and the health check answers behind a flood of them.
func TestIdleConnectionsBounded(t *testing.T) {
	t.Parallel()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	const limit = 4
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, a, ServeConfig{Listener: cl, MaxConns: limit, IdleTimeout: 200 * time.Millisecond, DrainTimeout: time.Second})
	}()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	var idle []net.Conn
	for range 3 * limit {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /v1/health HTTP/1.1\r\nHost: agent\r\n\r\n")
		idle = append(idle, conn)
	}
	c := agentapi.NewClient("http://"+addr, "tok", nil)
	hctx, hcancel := context.WithTimeout(context.Background(), time.Minute) // failure bound only
	defer hcancel()
	if h, err := c.Health(hctx); err != nil || h.Status != "ok" {
		t.Fatalf("health check behind %d idle connections: %+v %v", len(idle), h, err)
	}
	// Every idle connection got its 401 and was then closed by the agent.
	deadline := time.Now().Add(30 * time.Second) // failure bound only
	for i, conn := range idle {
		conn.SetReadDeadline(deadline)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("idle connection %d: %v %v", i, resp, err)
		}
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("idle connection %d was not closed by the agent: %v", i, err)
		}
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.max > limit {
		t.Errorf("%d connections served at once, limit %d", cl.max, limit)
	}
}

// TestLockSurvivesRestart: an agent restarted while a coordinator holds
// its lock comes back locked by the same owner until the lease runs out
// (fake clock); the lease can be refreshed by its owner only.
func TestLockSurvivesRestart(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	dir := t.TempDir()
	a, err := New(Config{StateDir: dir, Token: []byte("tok"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock(context.Background(), "coordinator-1", 10*time.Second, false); err != nil {
		t.Fatal(err)
	}
	a.Close(false)
	a, err = New(Config{StateDir: dir, Token: []byte("tok"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(true)
	if !a.Health().Locked {
		t.Fatal("the restarted agent is not locked")
	}
	if err := a.Lock(context.Background(), "coordinator-2", 10*time.Second, false); err == nil || !strings.Contains(err.Error(), "locked by coordinator-1") {
		t.Errorf("lock by another owner after the restart: %v", err)
	}
	clk.Advance(11 * time.Second)
	if err := a.Lock(context.Background(), "coordinator-2", 10*time.Second, false); err != nil {
		t.Errorf("lock after the restored lease ran out: %v", err)
	}
	if err := a.Unlock(context.Background(), "coordinator-2"); err != nil {
		t.Fatal(err)
	}
	a.Close(false)
	if a, err = New(Config{StateDir: dir, Token: []byte("tok"), Clock: clk}); err != nil {
		t.Fatal(err)
	}
	if a.Health().Locked {
		t.Error("unlocked agent locked after a restart")
	}
}
