package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// pidsOfGroup lists the live processes of a process group.
func pidsOfGroup(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == fmt.Sprint(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

func TestProcessGroupSupervision(t *testing.T) {
	t.Parallel()
	a, c := newAgent(t)
	ctx := context.Background()
	req := agentapi.ActivateRequest{Key: "grp", Target: "t1", Container: "process",
		Service: model.ManifestService{Name: "grp", Type: "process", Args: []string{"sh", "-c", "sleep 1000 & sleep 1000"}}}
	if err := c.Activate(ctx, req); err != nil {
		t.Fatal(err)
	}
	prof, _ := c.Profile(ctx)
	pid := prof.Services[0].Pid
	waitFor(t, func() bool { return len(pidsOfGroup(pid)) >= 2 }, "the service's child process")
	// A crash is followed by a restart.
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, func() bool {
		p, _ := c.Profile(ctx)
		return p.Services[0].Running && p.Services[0].Pid != pid && p.Services[0].Restarts >= 1
	}, "restart after a crash")
	// The crashed shell's child was killed with its group: no orphan.
	waitFor(t, func() bool { return len(pidsOfGroup(pid)) == 0 }, "the crashed group's orphan to be killed")
	// Deactivation kills the current group completely.
	prof, _ = c.Profile(ctx)
	pid2 := prof.Services[0].Pid
	waitFor(t, func() bool { return len(pidsOfGroup(pid2)) >= 2 }, "the restarted service's child")
	if err := c.Deactivate(ctx, "grp"); err != nil {
		t.Fatal(err)
	}
	if left := pidsOfGroup(pid2); len(left) > 0 {
		t.Errorf("processes left after deactivation: %v", left)
	}
	if h := a.Health(); h.Services != 0 {
		t.Errorf("health after deactivation: %+v", h)
	}
}

func TestCollectGarbage(t *testing.T) {
	t.Parallel()
	a, c := newAgent(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "exe")
	os.WriteFile(file, []byte("unused"), 0o755)
	sum := sha256.Sum256([]byte("unused"))
	c.UploadArtifact(ctx, "sha256:"+hex.EncodeToString(sum[:]), file)
	req := agentapi.ActivateRequest{Key: "st", Service: model.ManifestService{Name: "st", Type: "package", DeployState: true}}
	c.Activate(ctx, req)
	os.MkdirAll(filepath.Join(a.cfg.StateDir, "state", "st"), 0o700)
	c.Deactivate(ctx, "st")
	prof, _ := c.Profile(ctx)
	if len(prof.Garbage) != 1 || prof.Garbage[0] != "st" {
		t.Fatalf("garbage = %v", prof.Garbage)
	}
	res, err := c.CollectGarbage(ctx, agentapi.GCRequest{DeleteState: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Artifacts != 1 || res.States != 1 {
		t.Errorf("gc = %+v", res)
	}
	if _, err := os.Stat(filepath.Join(a.cfg.StateDir, "state", "st")); !os.IsNotExist(err) {
		t.Error("garbage state kept")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLockLeaseExpiresAndRefreshes(t *testing.T) {
	t.Parallel()
	_, c := newAgent(t)
	ctx := context.Background()
	if err := c.LockLease(ctx, "dead-coordinator", time.Second, false); err != nil {
		t.Fatal(err)
	}
	if err := c.LockLease(ctx, "dead-coordinator", time.Second, true); err != nil {
		t.Errorf("refresh by the owner: %v", err)
	}
	if err := c.LockLease(ctx, "other", time.Second, true); code(err) != 409 {
		t.Errorf("refresh by another owner: %v", err)
	}
	if err := c.Lock(ctx, "new-coordinator"); code(err) != 409 {
		t.Errorf("lock during the lease: %v", err)
	}
	// The owner never refreshes again (it died): the lease runs out.
	waitFor(t, func() bool { return c.Lock(ctx, "new-coordinator") == nil }, "the lease to expire")
	if err := c.Unlock(ctx, "new-coordinator"); err != nil {
		t.Fatal(err)
	}
}
