package main

import (
	"bytes"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--state-dir", "x"},
		{"--state-dir", "x", "--token-file", "t", "--tls-cert", "c"},
		{"--state-dir", "x", "--token-file", "t", "--publish"},
		{"--state-dir", "x", "--token-file", "t", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestAgentBinary runs the real binary: 401 without the token, health with
// it, and on SIGTERM a drain that ends at once (nothing deployed), exit 0.
func TestAgentBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dydisnix-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("  secret\n"), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--listen", addr, "--state-dir", filepath.Join(dir, "state"), "--token-file", tok, "--drain-timeout", "5s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // harmless once it exited
	url := "http://" + addr
	var resp *http.Response
	var err error
	// the listener has no readiness event outside the process: poll, with
	// a deadline that only keeps a broken agent from hanging the test
	testenv.Eventually(t, time.Minute, func() bool {
		resp, err = http.Get(url + "/v1/health")
		return err == nil
	}, "the agent to listen on %s", addr)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", url+"/v1/health", nil)
	req.Header.Set("Authorization", "Bearer secret")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with token: %v %v", resp, err)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute): // a deadline, not a speed assertion
		cmd.Process.Kill()
		<-done
		t.Fatal("agent did not exit after SIGTERM")
	}
	if strings.Contains(stderr.String(), "secret") {
		t.Error("the token appears in the logs")
	}
	if !strings.Contains(stderr.String(), "drained") {
		t.Errorf("no drain in the log:\n%s", stderr.String())
	}
	_ = fmt.Sprint()
}
