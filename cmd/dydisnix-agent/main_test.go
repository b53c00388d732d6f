package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--state-dir", "x"},
		{"--state-dir", "x", "--token-file", "t", "--tls-cert", "c"},
		{"--state-dir", "x", "--token-file", "t", "--insecure-http", "--publish"},
		{"--state-dir", "x", "--token-file", "t", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// notifySocket listens, as systemd does, for the sd_notify messages of a
// program started with NOTIFY_SOCKET=path; each message arrives on states.
func notifySocket(t *testing.T, dir string) (path string, states <-chan string) {
	path = filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 8)
	go func() {
		defer close(ch)
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

// expectState waits for the next sd_notify message and checks it; timeout
// only keeps a broken agent from hanging the test.
func expectState(t *testing.T, states <-chan string, want string, log fmt.Stringer) {
	t.Helper()
	select {
	case got := <-states:
		if got != want {
			t.Fatalf("sd_notify %q, want %q\n%s", got, want, log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no sd_notify %q\n%s", want, log)
	}
}

// terminate sends SIGTERM to the agent and waits until it exits with
// status 0; timeout only keeps a broken agent from hanging the test.
func terminate(t *testing.T, cmd *exec.Cmd, timeout time.Duration, log fmt.Stringer) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
		}
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the agent did not exit after SIGTERM\n%s", log)
	}
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgentBinary runs the real binary: READY=1 once it serves, 401
// without the token, health with it, and on SIGTERM STOPPING=1 and a drain
// that ends at once (nothing deployed), exit 0.
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
	sock, states := notifySocket(t, dir)
	cmd := exec.Command(bin, "--listen", addr, "--state-dir", filepath.Join(dir, "state"), "--token-file", tok, "--insecure-http", "--drain-timeout", "5s")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // harmless once it exited
	expectState(t, states, "READY=1", &stderr)
	url := "http://" + addr
	resp, err := http.Get(url + "/v1/health")
	if err != nil {
		t.Fatalf("agent ready but not serving: %v\n%s", err, stderr.String())
	}
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
	terminate(t, cmd, 30*time.Second, &stderr)
	expectState(t, states, "STOPPING=1", &stderr)
	if strings.Contains(stderr.String(), "secret") {
		t.Error("the token appears in the logs")
	}
	if !strings.Contains(stderr.String(), "drained") {
		t.Errorf("no drain in the log:\n%s", stderr.String())
	}
}
