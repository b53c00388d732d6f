package cmd_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/etcdtest"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// TestPublishinfraRegistersInEtcd runs the programs on a real etcd:
// dydisnix-publishinfra --registry (no mDNS interface) registers a signed
// machine, dydisnix-geninfra-mdns --registry --verify-key prints it (and
// not an unsigned one), and after SIGTERM the registration is withdrawn.
func TestPublishinfraRegistersInEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	url := "etcd://" + strings.TrimPrefix(c.Endpoints()[0], "http://")
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	key := write("key", "the fleet's registration secret\n")
	reg := []string{"--registry", url, "--registry-prefix", "/dydisnix/cli-test"}
	start := func(props string, extra ...string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin("dydisnix-publishinfra"), append(append([]string{"--properties", props}, reg...), extra...)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	signed := start(write("m1.json", `{"properties": {"hostname": "machine1", "mem": 2048}}`), "--sign-key", key)
	start(write("zzz.json", `{"properties": {"hostname": "zzz"}}`))

	geninfra := func() map[string]any {
		t.Helper()
		code, out, errs := runProgram(t, bin("dydisnix-geninfra-mdns"), append([]string{"--verify-key", key, "--log-level", "error"}, reg...)...)
		if code != 0 {
			t.Fatalf("geninfra-mdns --registry: exit %d: %s", code, errs)
		}
		var infra map[string]any
		if err := json.Unmarshal([]byte(out), &infra); err != nil {
			t.Fatalf("geninfra-mdns output: %v\n%s", err, out)
		}
		return infra
	}
	// Until machine1 is registered (the publisher starts meanwhile).
	var infra map[string]any
	testenv.Eventually(t, time.Minute, func() bool {
		infra = geninfra()
		return infra["machine1"] != nil
	}, "machine1 was not registered")
	if infra["zzz"] != nil {
		t.Errorf("an unsigned registration passed --verify-key: %v", infra)
	}
	if err := signed.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := signed.Wait(); err != nil {
		t.Fatalf("dydisnix-publishinfra after SIGTERM: %v", err)
	}
	if infra = geninfra(); infra["machine1"] != nil {
		t.Errorf("machine1 still registered after its publisher stopped: %v", infra)
	}
}
