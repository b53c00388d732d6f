package main

import (
	"bytes"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/testbed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"--help"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"crash"}, 2},
		{[]string{"up", "--no-such-flag"}, 2},
	} {
		var out, errb bytes.Buffer
		if got := run(tc.args, &out, &errb); got != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, got, tc.code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if got := run([]string{"list", "--dir", t.TempDir()}, &out, &errb); got != 1 || !strings.Contains(errb.String(), "no testbed runs") {
		t.Errorf("list without a testbed: exit %d, %s", got, errb.String())
	}
}

// TestDaemonLifecycle runs the real command: up starts a background
// testbed of real agents in namespaces, crash and partition act on it, and
// down deletes every namespace.
func TestDaemonLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for network namespaces (CI runs as root)")
	}
	bin := t.TempDir()
	for _, p := range [][2]string{{"dydisnix-testbed", "."}, {"dydisnix-agent", "../dydisnix-agent"}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, p[0]), p[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v: %s", p[1], err, out)
		}
	}
	dir := t.TempDir()
	tool := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "dydisnix-testbed"), append(args, "--dir", dir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dydisnix-testbed %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command(filepath.Join(bin, "dydisnix-testbed"), "down", "--dir", dir).Run() })
	out := tool("up", "-n", "2")
	if !strings.Contains(out, "machine1") || !strings.Contains(out, "machine2") {
		t.Fatalf("up: %s", out)
	}
	out = tool("crash", "machine1")
	if !strings.Contains(out, "machine1") || !strings.Contains(out, "stopped") {
		t.Fatalf("crash: %s", out)
	}
	out = tool("partition", "machine2")
	if !strings.Contains(out, "cut-off") {
		t.Fatalf("partition: %s", out)
	}
	tool("heal", "machine2")
	out = tool("add", "extra")
	if !strings.Contains(out, "extra") {
		t.Fatalf("add: %s", out)
	}
	// this testbed's namespaces (other testbeds may run beside it)
	resp, err := testbed.Call(dir, testbed.Request{Op: "list"})
	if err != nil || len(resp.Machines) == 0 {
		t.Fatalf("list: %v %+v", err, resp)
	}
	tool("down")
	ns, _ := exec.Command("ip", "netns", "list").Output()
	for _, m := range resp.Machines {
		for _, line := range strings.Split(string(ns), "\n") {
			if f := strings.Fields(line); m.Netns != "" && len(f) > 0 && f[0] == m.Netns {
				t.Errorf("namespace %s of %s left after down", m.Netns, m.Name)
			}
		}
	}
}
