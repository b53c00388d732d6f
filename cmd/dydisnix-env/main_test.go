package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agent"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	testenv.WriteExecutable(t, p, content)
	return p
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-s", "s.json"},
		{"-s", "s.json", "-q", "q.yaml", "--deployer", "ssh"},
		{"-s", "s.json", "-q", "q.yaml"}, // agent deployer without token
		{"-s", "s.json", "-q", "q.yaml", "--bogus"},
		{"-s", "s.json", "-q", "q.yaml", "--ids", "x.json", "--dry-run"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: dydisnix-env") {
		t.Errorf("-h: %d", code)
	}
}

func TestModelErrorExitsOne(t *testing.T) {
	dir := t.TempDir()
	svc := write(t, dir, "services.json", `{"a": {"name": "a", "type": "process", "pkg": "./missing"}}`)
	infra := write(t, dir, "infra.json", `{"t1": {"properties": {"agentURL": "http://127.0.0.1:1"}}}`)
	qos := write(t, dir, "qos.yaml", "steps: []\n")
	var out, errb bytes.Buffer
	code := run([]string{"-s", svc, "-i", infra, "-q", qos, "--state-dir", filepath.Join(dir, "st"), "--dry-run"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "missing") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
}

// TestDryRunThenDeploy runs the command against a real agent: --dry-run
// prints numbered steps and changes nothing; the real run reports progress
// per step and installs generation 1.
func TestDryRunThenDeploy(t *testing.T) {
	dir := t.TempDir()
	a, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	exe := write(t, dir, "svc.sh", "#!/bin/sh\nexec sleep 1000\n")
	_ = exe
	svc := write(t, dir, "services.json", `{"a": {"name": "a", "type": "process", "pkg": "./svc.sh"},
		"b": {"name": "b", "type": "process", "pkg": "./svc.sh", "dependsOn": ["a"]}}`)
	infra := write(t, dir, "infra.json", fmt.Sprintf(`{"t1": {"properties": {"agentURL": "http://%s"}}}`, ln.Addr()))
	qos := write(t, dir, "qos.yaml", "steps: []\n")
	tok := write(t, dir, "token", "tok\n")
	st := filepath.Join(dir, "st")
	args := []string{"-s", svc, "-i", infra, "-q", qos, "--state-dir", st, "--agent-token-file", tok, "--insecure-http"}
	var out, errb bytes.Buffer
	if code := run(append(args, "--dry-run"), &out, &errb); code != 0 {
		t.Fatalf("dry run: %d %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "1. ") || !strings.Contains(out.String(), "activate b") {
		t.Fatalf("dry run output:\n%s", out.String())
	}
	if p := a.Profile(t.Context()); len(p.Services) != 0 {
		t.Fatal("dry run changed the target")
	}
	out.Reset()
	errb.Reset()
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("deploy: %d %s", code, errb.String())
	}
	if !regexp.MustCompile(`(?m)^\[\d+/\d+\] started: activate b on t1$`).MatchString(errb.String()) ||
		!regexp.MustCompile(`(?m)^\[\d+/\d+\] done: activate b on t1 \(`).MatchString(errb.String()) ||
		!strings.Contains(errb.String(), "deployed generation 1") {
		t.Errorf("progress:\n%s", errb.String())
	}
	if p := a.Profile(t.Context()); len(p.Services) != 2 {
		t.Fatalf("profile after deploy: %+v", p)
	}
	// Again: nothing to do, same generation.
	errb.Reset()
	if code := run(args, &out, &errb); code != 0 || !strings.Contains(errb.String(), "generation 1 (0 steps") {
		t.Errorf("identical redeploy: %d %s", code, errb.String())
	}
	// Undeploy, list, roll back.
	base := []string{"--state-dir", st, "--agent-token-file", tok, "--insecure-http"}
	errb.Reset()
	if code := run(append(base, "--undeploy"), &out, &errb); code != 0 {
		t.Fatalf("undeploy: %d %s", code, errb.String())
	}
	if p := a.Profile(t.Context()); len(p.Services) != 0 {
		t.Fatalf("profile after undeploy: %+v", p)
	}
	out.Reset()
	if code := run(append(base, "--list-generations"), &out, &errb); code != 0 || !strings.Contains(out.String(), "2   0 services on 0 targets   (current)") {
		t.Errorf("list: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run(append(base, "--rollback", "--log-format", "json"), &out, &errb); code != 0 {
		t.Fatalf("rollback: %d %s", code, errb.String())
	}
	// --log-format json: the progress is JSON lines with the step's fields
	var steps int
	for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "step" {
			continue
		}
		steps++
		if m["step"] == nil || m["of"] == nil || m["op"] == nil || m["target"] != "t1" || m["phase"] == nil {
			t.Errorf("progress line %s", line)
		}
	}
	if steps == 0 {
		t.Errorf("no JSON progress lines with --log-format json:\n%s", errb.String())
	}
	if p := a.Profile(t.Context()); len(p.Services) != 2 {
		t.Fatalf("profile after rollback: %+v", p)
	}
}

// TestInvalidModelRefused: a services model Disnix could not deploy (a
// dependsOn cycle) is refused before anything is planned, naming the file
// and suggesting connectsTo.
func TestInvalidModelRefused(t *testing.T) {
	dir := t.TempDir()
	svc := write(t, dir, "services.json", `{"a": {"name": "a", "type": "process", "dependsOn": ["b"]}, "b": {"name": "b", "type": "process", "dependsOn": ["a"]}}`)
	infra := write(t, dir, "infra.json", `{"t1": {"properties": {"agentURL": "http://127.0.0.1:1"}}}`)
	qos := write(t, dir, "qos.yaml", "steps: []\n")
	var out, errb bytes.Buffer
	code := run([]string{"-s", svc, "-i", infra, "-q", qos, "--state-dir", filepath.Join(dir, "st"), "--dry-run"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), svc) || !strings.Contains(errb.String(), "connectsTo") {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
}

// TestSaysItBrowses: the wait for mDNS is announced on stderr, with its
// length, before it starts (whether or not the interface can browse).
func TestSaysItBrowses(t *testing.T) {
	dir := t.TempDir()
	svc := write(t, dir, "services.json", `{"a": {"name": "a", "type": "process"}}`)
	var out, errb bytes.Buffer
	run([]string{"-s", svc, "-q", "builtin:by-type", "--mdns-interface", "lo", "--discovery-timeout", "50ms",
		"--dry-run", "--state-dir", filepath.Join(dir, "st")}, &out, &errb)
	if !regexp.MustCompile(`browsing mDNS for the infrastructure.*"lo".*"50ms"`).MatchString(errb.String()) {
		t.Errorf("stderr does not say it browses:\n%s", errb.String())
	}
}
