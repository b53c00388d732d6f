package agent

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

func faultAgent(t *testing.T, dir string) *agentapi.Client {
	t.Helper()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok"), FaultDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	return agentapi.NewClient(srv.URL, "tok", nil)
}

// TestFaultHook: an armed "fail" fails the operation once; an armed
// "block" holds it until the test releases it; lease renewals never hit
// the lock fault; without a fault directory nothing is injected.
func TestFaultHook(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := faultAgent(t, dir)
	arm := func(op, mode string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, op), []byte(mode), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	arm(FaultLock, "fail")
	if err := c.LockLease(ctx, "o", time.Minute, false); code(err) != 500 {
		t.Fatalf("armed lock: %v, want an injected 500", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FaultLock+".failed")); err != nil {
		t.Errorf("no .failed marker: %v", err)
	}
	if err := c.LockLease(ctx, "o", time.Minute, false); err != nil {
		t.Fatalf("the fault fired twice: %v", err)
	}

	arm(FaultLock, "fail")
	if err := c.LockLease(ctx, "o", time.Minute, true); err != nil {
		t.Fatalf("a renewal hit the lock fault: %v", err)
	}
	os.Remove(filepath.Join(dir, FaultLock))

	arm(FaultUnlock, "block")
	done := make(chan error, 1)
	go func() { done <- c.Unlock(ctx, "o") }()
	held := filepath.Join(dir, FaultUnlock+".held")
	testenv.Eventually(t, time.Minute, func() bool { _, err := os.Stat(held); return err == nil }, "the unlock to be held")
	select {
	case err := <-done:
		t.Fatalf("the held unlock answered before its release: %v", err)
	default:
	}
	os.Remove(held)
	if err := <-done; err != nil {
		t.Fatalf("released unlock: %v", err)
	}

	off := faultAgent(t, "")
	arm(FaultLock, "fail")
	if err := off.LockLease(ctx, "o", time.Minute, false); err != nil {
		t.Fatalf("hook disabled, yet: %v", err)
	}
}
