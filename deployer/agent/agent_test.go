package agent

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/clock"
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
	err := c.Activate(ctx, agentapi.ActivateRequest{Key: "k", Service: model.ManifestService{Name: "x", Type: "no-such-type"}})
	if code(err) != 422 || !strings.Contains(err.Error(), `no Dysnomia module for type "no-such-type"`) {
		t.Errorf("a type without a module: %v", err)
	}
	if err := c.Activate(ctx, agentapi.ActivateRequest{Key: "p", Service: model.ManifestService{Name: "pkg", Type: "package"}}); err != nil {
		t.Fatal(err)
	}
	prof, _ := c.Profile(ctx)
	if len(prof.Services) != 1 {
		t.Fatalf("profile: %+v", prof)
	}
	a.Drain(ctx, 0) // marks the agent draining; the zero timeout ends the wait at once
	if h, err := c.Health(ctx); err != nil || !h.Draining || h.Status != "draining" {
		t.Fatalf("health after Drain: %+v %v", h, err)
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
	testenv.Eventually(t, time.Minute, func() bool { return len(pidsOfGroup(pid)) >= 2 }, "the service's child process")
	// A crash is followed by a restart.
	syscall.Kill(pid, syscall.SIGKILL)
	testenv.Eventually(t, time.Minute, func() bool {
		p, _ := c.Profile(ctx)
		return p.Services[0].Running && p.Services[0].Pid != pid && p.Services[0].Restarts >= 1
	}, "restart after a crash")
	// The crashed shell's child was killed with its group: no orphan.
	testenv.Eventually(t, time.Minute, func() bool { return len(pidsOfGroup(pid)) == 0 }, "the crashed group's orphan to be killed")
	// Deactivation kills the current group completely.
	prof, _ = c.Profile(ctx)
	pid2 := prof.Services[0].Pid
	testenv.Eventually(t, time.Minute, func() bool { return len(pidsOfGroup(pid2)) >= 2 }, "the restarted service's child")
	if err := c.Deactivate(ctx, "grp"); err != nil {
		t.Fatal(err)
	}
	// The group was sent SIGKILL; on a loaded host its members may take a
	// moment to be scheduled and die (a group left alive fails here after
	// the bound).
	testenv.Eventually(t, time.Minute, func() bool { return len(pidsOfGroup(pid2)) == 0 }, "the deactivated group's processes to die")
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

// TestLockLeaseExpiresAndRefreshes runs the lease on a fake clock: the
// calls within the lease need no wall-clock margin (a 1 s lease over three
// HTTP calls used to expire on a loaded machine).
func TestLockLeaseExpiresAndRefreshes(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	c := agentapi.NewClient(srv.URL, "tok", nil)
	ctx := context.Background()
	if err := c.LockLease(ctx, "dead-coordinator", 10*time.Second, false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	if err := c.LockLease(ctx, "dead-coordinator", 10*time.Second, true); err != nil {
		t.Errorf("refresh by the owner: %v", err)
	}
	if err := c.LockLease(ctx, "other", 10*time.Second, true); code(err) != 409 {
		t.Errorf("refresh by another owner: %v", err)
	}
	clk.Advance(9 * time.Second) // 18 s after the lock: alive thanks to the refresh
	if err := c.Lock(ctx, "new-coordinator"); code(err) != 409 {
		t.Errorf("lock during the lease: %v", err)
	}
	// The owner never refreshes again (it died): the lease runs out.
	clk.Advance(time.Second)
	if err := c.LockLease(ctx, "dead-coordinator", 10*time.Second, true); code(err) != 409 {
		t.Errorf("refresh of an expired lease: %v", err)
	}
	if err := c.Lock(ctx, "new-coordinator"); err != nil {
		t.Fatalf("lock after the lease expired: %v", err)
	}
	if err := c.Unlock(ctx, "new-coordinator"); err != nil {
		t.Fatal(err)
	}
}

// TestDrainEndsWhenTheLeaseRunsOut: a drain waiting for a coordinator
// that died holding the lock ends when its lease expires (fake clock).
func TestDrainEndsWhenTheLeaseRunsOut(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(true)
	if err := a.Lock(context.Background(), "dead-coordinator", 30*time.Second, false); err != nil {
		t.Fatal(err)
	}
	moved := make(chan bool, 1)
	go func() { moved <- a.Drain(context.Background(), time.Hour) }()
	// Drain arms two timers: its deadline and the lease's expiry.
	testenv.Eventually(t, time.Minute, func() bool { return clk.Pending() == 2 }, "the drain to wait for the lease")
	clk.Advance(30 * time.Second)
	if !<-moved {
		t.Error("the drain did not end as moved away once the lease expired")
	}
}

// TestTerminateIsBounded: stopping a process whose exit is never seen
// (an unkillable process) gives up after SIGKILL and the grace period
// instead of waiting for ever (the supervisor used to wait unboundedly).
func TestTerminateIsBounded(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo ready; sleep 1000`) // only SIGKILL stops it
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // SIGTERM is ignored from now on
		t.Fatal(err)
	}
	never := make(chan struct{}) // the exit is never reported
	if terminate(cmd.Process.Pid, never, time.Millisecond) {
		t.Error("terminate reported an exit it never saw")
	}
	// It did send the signals: the process is gone.
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("sleep ended with %v, want killed", err)
	}
}

// TestWatchExit: the exit of a process the agent did not start (adopted)
// is reported by its pidfd, and a watch can be ended.
func TestWatchExit(t *testing.T) {
	t.Parallel()
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	cmd := start()
	exited, unwatch := watchExit(cmd.Process.Pid)
	defer unwatch()
	select {
	case <-exited:
		t.Fatal("exit reported for a running process")
	default:
	}
	cmd.Process.Kill()
	<-exited // a hang here is the failure

	cmd2 := start()
	exited2, unwatch2 := watchExit(cmd2.Process.Pid)
	unwatch2()
	unwatch2() // idempotent
	select {
	case <-exited2:
		t.Error("an ended watch reported an exit")
	default:
	}

	gone, _ := watchExit(1 << 30) // no such process
	<-gone
}

// TestConcurrentActivationsOfOneKey: three concurrent activations of one
// key start one process (they used to start three and track one, the
// others surviving deactivation), and a deactivation stops it.
func TestConcurrentActivationsOfOneKey(t *testing.T) {
	t.Parallel()
	a, c := newAgent(t)
	ctx := context.Background()
	starts := filepath.Join(t.TempDir(), "starts")
	req := agentapi.ActivateRequest{Key: "one", Target: "t1", Container: "process",
		Service: model.ManifestService{Name: "one", Type: "process",
			Args: []string{"sh", "-c", "echo $$ >> " + starts + "; exec sleep 1000"}}}
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- c.Activate(ctx, req) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(starts)
	pids := strings.Fields(string(b))
	if len(pids) != 1 {
		t.Errorf("%d processes started for one key, want 1", len(pids))
	}
	if err := c.Deactivate(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if h := a.Health(); h.Services != 0 {
		t.Errorf("health after deactivation: %+v", h)
	}
	// The drain stops whatever the agent still runs: nothing may survive.
	a.Drain(ctx, time.Second)
	for _, pid := range pids {
		if err := exec.Command("kill", "-0", pid).Run(); err == nil {
			t.Errorf("process %s survived the deactivation and the drain", pid)
			exec.Command("kill", "-9", pid).Run()
		}
	}
}

// TestProfileNotModified: the client asks for the profile again with its
// ETag; the agent answers 304 while the profile is the same, and the
// client returns the one it has; a change is a new answer.
func TestProfileNotModified(t *testing.T) {
	t.Parallel()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var codes []int
	h := a.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.URL.Path == agentapi.PathProfile {
			mu.Lock()
			codes = append(codes, rec.code)
			mu.Unlock()
		}
	}))
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	c := agentapi.NewClient(srv.URL, "tok", nil)
	ctx := context.Background()
	activate := func(key string) {
		t.Helper()
		if err := c.Activate(ctx, agentapi.ActivateRequest{Key: key, Service: model.ManifestService{Name: key, Type: "package"}}); err != nil {
			t.Fatal(err)
		}
	}
	activate("p1")
	var sizes []int
	for i := 0; i < 3; i++ {
		if i == 2 {
			activate("p2")
		}
		prof, err := c.Profile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(prof.Services))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(codes, []int{200, 304, 200}) || !slices.Equal(sizes, []int{1, 1, 2}) {
		t.Errorf("answers %v with %v services; want [200 304 200] with [1 1 2]", codes, sizes)
	}
}
