package cmd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// TestSignedAgentVerifiedByEnv covers finding 1 of the trust review
// ("signing does not help in the usual setup: dydisnix-agent --publish has
// no --sign-key, dydisnix-env no --verify-key"): an agent publishing with
// --sign-key is seen by dydisnix-env --verify-key, and an unsigned
// stranger announcing itself on the same network is not a target.
func TestSignedAgentVerifiedByEnv(t *testing.T) {
	nw := netns.NewNetworkT(t, "ddsk", 3)
	agentNode, stranger, coord := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	dir := userDir(t)
	write := func(name, content string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	key := write("announce.key", "the fleet's announcement secret\n")
	tok := write("token", "agent-token-for-the-test")
	props := write("machine1.json", `{"properties": {"hostname": "machine1", "supportedTypes": ["process"]}}`)
	strangerProps := write("zzz.json", `{"properties": {"hostname": "zzz", "supportedTypes": ["process"]}}`)
	write("services.yaml", "a: {name: a, type: process, command: \"sleep 60\"}\nb: {name: b, type: process, command: \"sleep 60\"}\n")
	ctx := context.Background()

	fleet := testenv.NewFleet(t, "machine1")
	agent := agentNode.Command(ctx, bin("dydisnix-agent"), append([]string{"--listen", agentNode.Addr + ":7420", "--state-dir", filepath.Join(dir, "state"),
		"--token-file", tok, "--publish", "--interface", agentNode.Interface, "--properties", props, "--sign-key", key}, fleet.AgentArgs("machine1")...)...)
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer agentLog.Close()
	var out []byte
	t.Cleanup(func() {
		if t.Failed() {
			logged, _ := os.ReadFile(agentLog.Name())
			t.Logf("dydisnix-env, last run:\n%s\nagent:\n%s", out, logged)
		}
	})
	agent.Stderr = agentLog
	netns.StartT(t, agent)
	pub := stranger.Command(ctx, bin("dydisnix-publishinfra"), "--interface", stranger.Interface, "--properties", strangerProps)
	netns.StartT(t, pub)

	testenv.Eventually(t, 2*time.Minute, func() bool {
		env := coord.Command(ctx, bin("dydisnix-env"), append([]string{"-s", "services.yaml", "-q", "qos.yaml", "--dry-run", "--state-dir", filepath.Join(dir, "st"),
			"--mdns-interface", coord.Interface, "--discovery-timeout", "3s", "--verify-key", key, "--agent-token-file", tok}, fleet.CoordinatorArgs()...)...)
		env.Dir = dir
		out, _ = env.CombinedOutput()
		return strings.Contains(string(out), "on machine1") && strings.Contains(string(out), "disnix-zzz")
	}, "dydisnix-env --verify-key did not plan on the signed agent and refuse the stranger")
	if strings.Contains(string(out), "on zzz") {
		t.Errorf("the unsigned stranger got a service:\n%s", out)
	}
	if !strings.Contains(string(out), "not signed with the verify key") {
		t.Errorf("the stranger's refusal is not logged:\n%s", out)
	}
}
