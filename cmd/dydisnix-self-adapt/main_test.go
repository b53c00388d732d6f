package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestUsageErrors(t *testing.T) {
	t.Setenv("DYDISNIX_GENINFRA", "")
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no services", []string{"-q", "q.yaml"}, "A services expression must be specified"},
		{"no qos", []string{"-s", "s.json"}, "A quality of service model must be specified"},
		{"no generator", []string{"-s", "s.json", "-q", "q.yaml"}, "An infrastructure generator must be specified"},
		{"no token", []string{"-s", "s.json", "-q", "q.yaml", "-i", "i.json"}, "--agent-token-file is required"},
		{"bad deployer", []string{"-s", "s", "-q", "q", "-i", "i", "--deployer", "ssh"}, "expected agent or disnix"},
		{"bad interval", []string{"-s", "s", "-q", "q", "-i", "i", "--interval", "soon"}, "--interval"},
		{"ids alone", []string{"-s", "s", "-q", "q", "-i", "i", "--agent-token-file", "t", "--insecure-http", "--ids", "ids.json"}, "go together"},
		{"schedule without snapshot", []string{"-s", "s", "-q", "q", "-i", "i", "--agent-token-file", "t", "--insecure-http", "--snapshot-schedule", "@every 1m"}, "needs --snapshot"},
		{"bad schedule", []string{"-s", "s", "-q", "q", "-i", "i", "--agent-token-file", "t", "--insecure-http", "--snapshot", "--snapshot-schedule", "every minute"}, "--snapshot-schedule"},
		{"bad log format", []string{"-s", "s", "-q", "q", "-i", "i", "--agent-token-file", "t", "--insecure-http", "--log-format", "xml"}, "console or json"},
		{"several coordinators with disnix", []string{"-s", "s", "-q", "q", "--registry", "etcd://10.0.0.1:2379", "--deployer", "disnix"}, "needs --deployer agent"},
		{"leader ttl below a second", []string{"-s", "s", "-q", "q", "--registry", "etcd://10.0.0.1:2379", "--agent-token-file", "t", "--insecure-http", "--leader-ttl", "500ms"}, "--leader-ttl"},
		{"unknown flag", []string{"--bogus"}, "bogus"},
	}
	for _, c := range cases {
		var o, e bytes.Buffer
		if code := run(c.args, &o, &e); code != 2 || !strings.Contains(e.String(), c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, firstLine(e.String()), c.msg)
		}
	}
	var o, e bytes.Buffer
	if code := run([]string{"--help"}, &o, &e); code != 0 || !strings.Contains(o.String(), "--snapshot-schedule") {
		t.Errorf("--help: %d", code)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func TestBadModelsExit1(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"a": {"name": "a", "dependsOn": ["nope"]}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "q.yaml"), []byte("steps: []\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "i.json"), []byte(`{}`), 0o644)
	os.WriteFile(filepath.Join(dir, "token"), []byte("tok"), 0o600)
	var o, e bytes.Buffer
	code := run([]string{"-s", filepath.Join(dir, "s.json"), "-q", filepath.Join(dir, "q.yaml"), "-i", filepath.Join(dir, "i.json"),
		"--agent-token-file", filepath.Join(dir, "token"), "--insecure-http", "--state-dir", filepath.Join(dir, "state"), "--status-listen", ""}, &o, &e)
	if code != 1 || !strings.Contains(e.String(), "nope") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the unknown dependency", code, e.String())
	}
}

// TestServeNotifiesSystemd runs the command's server with a static
// infrastructure (no targets), checks READY=1 on a real notify socket,
// /status on the status server, and STOPPING=1 with a clean exit on stop.
func TestServeNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := &options{listen: addr, shutdownTimeout: time.Second}
	o.pass.Deployer, o.pass.Parallel, o.pass.Keep, o.agent.InsecureHTTP = "agent", 2, 2, true
	o.agent.TokenFile, o.state.Dir = write("token", "tok-0123456789"), filepath.Join(dir, "state")
	o.infra.File = write("infra.json", "{}")
	o.timing.Resync = time.Hour
	o.pass.Models.Services = write("services.json", `{"a": {"name": "a", "type": "process"}}`)
	o.pass.Models.QoS = write("qos.yaml", "steps: []\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, o, zap.NewNop()) }()

	read := func() string {
		buf := make([]byte, 128)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v", err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q", got)
	}
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st["phase"] == nil {
		t.Errorf("/status = %v", st)
	}
	cancel()
	if got := read(); got != "STOPPING=1" {
		t.Errorf("notification on stop %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
