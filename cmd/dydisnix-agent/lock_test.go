package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
)

// TestLockSurvivesAgentRestart: a real agent process killed (-9) while a
// coordinator holds its transition lock comes back locked by the same
// owner: another coordinator is refused, the owner refreshes and unlocks.
func TestLockSurvivesAgentRestart(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dydisnix-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("secret\n"), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := func() (*exec.Cmd, *syncBuffer) {
		sock, states := notifySocket(t, t.TempDir())
		cmd := exec.Command(bin, "--listen", addr, "--state-dir", filepath.Join(dir, "state"), "--token-file", tok, "--insecure-http")
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() }) // harmless once it exited
		expectState(t, states, "READY=1", &stderr)
		return cmd, &stderr
	}
	c := agentapi.NewClient("http://"+addr, "secret", nil)
	ctx := context.Background()
	cmd, _ := start()
	if err := c.LockLease(ctx, "coordinator-1", 10*time.Minute, false); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill() // mid-transition
	cmd.Wait()
	cmd, stderr := start()
	if h, err := c.Health(ctx); err != nil || !h.Locked {
		t.Fatalf("health after the restart: %+v %v\n%s", h, err, stderr)
	}
	var se *agentapi.StatusError
	if err := c.LockLease(ctx, "coordinator-2", time.Minute, false); !errors.As(err, &se) || se.Code != 409 || !strings.Contains(err.Error(), "coordinator-1") {
		t.Errorf("lock by another coordinator after the restart: %v", err)
	}
	if err := c.LockLease(ctx, "coordinator-1", 10*time.Minute, true); err != nil {
		t.Errorf("refresh by the owner after the restart: %v", err)
	}
	if err := c.Unlock(ctx, "coordinator-1"); err != nil {
		t.Errorf("unlock by the owner after the restart: %v", err)
	}
	terminate(t, cmd, 30*time.Second, stderr)
}
