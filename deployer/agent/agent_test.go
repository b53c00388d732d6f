package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

func newAgent(t *testing.T) (*Agent, *agentapi.Client) {
	t.Helper()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	return a, agentapi.NewClient(srv.URL, "tok", nil)
}

func code(err error) int {
	var se *agentapi.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestLockSemantics(t *testing.T) {
	t.Parallel()
	_, c := newAgent(t)
	ctx := context.Background()
	if err := c.Unlock(ctx, "a"); code(err) != 409 {
		t.Errorf("unlock when not locked: %v", err)
	}
	if err := c.Lock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Lock(ctx, "b"); code(err) != 409 {
		t.Errorf("second lock: %v", err)
	}
	if err := c.Lock(ctx, "a"); code(err) != 409 {
		t.Errorf("double lock by the same owner: %v", err)
	}
	if h, _ := c.Health(ctx); !h.Locked {
		t.Error("health does not report the lock")
	}
	if err := c.Unlock(ctx, "b"); code(err) != 409 {
		t.Errorf("unlock by another owner: %v", err)
	}
	if err := c.Unlock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func TestArtifactDigestVerified(t *testing.T) {
	t.Parallel()
	a, c := newAgent(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "exe")
	os.WriteFile(file, []byte("#!/bin/sh\n"), 0o755)
	sum := sha256.Sum256([]byte("#!/bin/sh\n"))
	good := "sha256:" + hex.EncodeToString(sum[:])
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := c.UploadArtifact(ctx, bad, file); code(err) != 422 {
		t.Errorf("upload with a wrong digest: %v", err)
	}
	if sent, err := c.UploadArtifact(ctx, good, file); err != nil || !sent {
		t.Fatalf("upload: %v %v", sent, err)
	}
	if sent, err := c.UploadArtifact(ctx, good, file); err != nil || sent {
		t.Errorf("second upload not skipped: %v %v", sent, err)
	}
	if !a.HasArtifact(hex.EncodeToString(sum[:])) {
		t.Error("artifact missing")
	}
	if err := c.PutSnapshot(ctx, "../etc", strings.Repeat("a", 64), strings.NewReader("x")); err == nil {
		t.Error("snapshot upload with a path in the service name accepted")
	}
}

func TestSnapshotRestoreVerifiesHash(t *testing.T) {
	t.Parallel()
	a, c := newAgent(t)
	ctx := context.Background()
	state := filepath.Join(a.cfg.StateDir, "state", "db")
	os.MkdirAll(filepath.Join(state, "sub"), 0o700)
	os.WriteFile(filepath.Join(state, "data"), []byte("v1"), 0o600)
	os.WriteFile(filepath.Join(state, "sub", "more"), []byte("nested"), 0o600)
	s1, err := c.Snapshot(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.Snapshot(ctx, "db")
	if again.Digest != s1.Digest || again.Generation != s1.Generation {
		t.Errorf("equal state gave a new generation: %+v %+v", s1, again)
	}
	os.WriteFile(filepath.Join(state, "data"), []byte("v2"), 0o600)
	if _, err := c.Snapshot(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restore(ctx, "db", s1.Digest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "data")); string(b) != "v1" {
		t.Errorf("restored data = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "sub", "more")); string(b) != "nested" {
		t.Errorf("restored nested = %q", b)
	}
	// Corrupt the stored snapshot: restore refuses it.
	f := filepath.Join(a.cfg.StateDir, "snapshots", "db", strings.TrimPrefix(s1.Digest, "sha256:")+".tar.gz")
	os.WriteFile(f, []byte("corrupt"), 0o600)
	if err := c.Restore(ctx, "db", s1.Digest); code(err) != 422 {
		t.Errorf("restore of a corrupt snapshot: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "data")); string(b) != "v1" {
		t.Errorf("failed restore changed the state: %q", b)
	}
	// Keep: only 2 generations by default.
	for i := 0; i < 4; i++ {
		os.WriteFile(filepath.Join(state, "data"), []byte{byte('a' + i)}, 0o600)
		c.Snapshot(ctx, "db")
	}
	if gens, _ := c.Snapshots(ctx, "db"); len(gens) != 2 {
		t.Errorf("generations kept = %d, want 2", len(gens))
	}
}

func TestRestoreRefusesEscapingArchive(t *testing.T) {
	t.Parallel()
	_, c := newAgent(t)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "../../evil", Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	gz.Close()
	sum := sha256.Sum256(buf.Bytes())
	d := "sha256:" + hex.EncodeToString(sum[:])
	ctx := context.Background()
	if err := c.PutSnapshot(ctx, "db", d, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := c.Restore(ctx, "db", d); err == nil || !strings.Contains(err.Error(), "leaves the state directory") {
		t.Errorf("escaping archive restored: %v", err)
	}
}

func TestActivateUnsupportedTypeAndDrainRefusal(t *testing.T) {
	t.Parallel()
	a, c := newAgent(t)
	ctx := context.Background()
	err := c.Activate(ctx, agentapi.ActivateRequest{Key: "k", Service: model.ManifestService{Name: "x", Type: "mysql-database"}})
	if code(err) != 400 || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("unsupported type: %v", err)
	}
	if err := c.Activate(ctx, agentapi.ActivateRequest{Key: "p", Service: model.ManifestService{Name: "pkg", Type: "package"}}); err != nil {
		t.Fatal(err)
	}
	prof, _ := c.Profile(ctx)
	if len(prof.Services) != 1 {
		t.Fatalf("profile: %+v", prof)
	}
	go a.Drain(ctx, 0)
	for {
		if h, _ := c.Health(ctx); h != nil && h.Draining {
			break
		}
	}
	err = c.Activate(ctx, agentapi.ActivateRequest{Key: "q", Service: model.ManifestService{Name: "pkg2", Type: "package"}})
	if code(err) != http.StatusServiceUnavailable {
		t.Errorf("activation while draining: %v", err)
	}
}

func TestBadKeysRefused(t *testing.T) {
	t.Parallel()
	_, c := newAgent(t)
	ctx := context.Background()
	for _, k := range []string{"", "../x", "a/b", ".hidden"} {
		err := c.Activate(ctx, agentapi.ActivateRequest{Key: k, Service: model.ManifestService{Name: "x", Type: "package"}})
		if code(err) != 400 {
			t.Errorf("activate key %q: %v", k, err)
		}
		if k != "" {
			if err := c.Deactivate(ctx, k); code(err) != 400 {
				t.Errorf("deactivate key %q: %v", k, err)
			}
		}
	}
	// A service that never wrote state still snapshots (empty state).
	if _, err := c.Snapshot(ctx, "fresh"); err != nil {
		t.Errorf("snapshot of an empty state: %v", err)
	}
}
