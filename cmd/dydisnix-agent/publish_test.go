package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/netns"
)

// TestPublishAndGoodbyeInNamespaces runs the agent with --publish in one
// network namespace and the mDNS browser (dydisnix-geninfra-mdns) in
// another, on a private bridge: the machine is seen with its agentURL, and
// after SIGTERM (drain: goodbye first) it is gone.
func TestPublishAndGoodbyeInNamespaces(t *testing.T) {
	nw := netns.NewNetworkT(t, "dda", 2)
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "dydisnix-agent")
	browseBin := filepath.Join(dir, "dydisnix-geninfra-mdns")
	for bin, pkg := range map[string]string{agentBin: ".", browseBin: "../dydisnix-geninfra-mdns"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("secret"), 0o600)
	props := filepath.Join(dir, "props.json")
	os.WriteFile(props, []byte(`{"properties": {"hostname": "machine1", "zone": "a"}}`), 0o644)
	node, peer := nw.Nodes[0], nw.Nodes[1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agent := node.Command(ctx, agentBin, "--listen", node.Addr+":7420", "--state-dir", filepath.Join(dir, "state"),
		"--token-file", tok, "--insecure-http", "--publish", "--interface", node.Interface, "--properties", props, "--drain-timeout", "5s")
	var agentLog syncBuffer
	agent.Stderr = &agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()

	browse := func() map[string]any {
		out, err := peer.Command(ctx, browseBin, "--interface", peer.Interface, "--timeout", "3s").Output()
		if err != nil {
			t.Fatalf("browse: %v", err)
		}
		var infra map[string]any
		if err := json.Unmarshal(out, &infra); err != nil {
			t.Fatalf("browse output %q: %v", out, err)
		}
		return infra
	}
	want := fmt.Sprintf("http://%s:7420", node.Addr)
	found := false
	for i := 0; i < 3 && !found; i++ {
		for _, v := range browse() {
			if tm, ok := v.(map[string]any); ok {
				if p, ok := tm["properties"].(map[string]any); ok && p["agentURL"] == want {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("the agent's announcement with agentURL %s was not seen\nagent log:\n%s", want, agentLog.String())
	}
	terminate(t, agent, 30*time.Second, &agentLog)
	if !strings.Contains(agentLog.String(), "goodbye") {
		t.Errorf("no goodbye in the log:\n%s", agentLog.String())
	}
	for _, v := range browse() {
		if tm, ok := v.(map[string]any); ok {
			if p, ok := tm["properties"].(map[string]any); ok && p["agentURL"] == want {
				t.Errorf("machine still announced after the drain")
			}
		}
	}
}
