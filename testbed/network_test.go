package testbed

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for network namespaces (CI runs as root)")
	}
}

// alphaBeta starts a network (namespaces named after prefix, addresses in
// cidr) with the hosts alpha and beta; it is removed when the test ends.
func alphaBeta(t *testing.T, prefix, cidr string) (n *Network, alpha, beta *Host) {
	t.Helper()
	needRoot(t)
	n, err := NewNetwork(RandomPrefix(prefix), netip.MustParsePrefix(cidr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if alpha, err = n.AddHost("alpha"); err != nil {
		t.Fatal(err)
	}
	if beta, err = n.AddHost("beta"); err != nil {
		t.Fatal(err)
	}
	return n, alpha, beta
}

func TestNetworkHostsReachEachOther(t *testing.T) {
	n, a, _ := alphaBeta(t, "tbt", "10.231.7.0/24")
	out, err := a.Command("ping", "-c", "1", "-W", "2", "beta").CombinedOutput()
	if err != nil {
		t.Fatalf("ping beta from alpha: %v: %s", err, out)
	}
	if err := n.SetLink("beta", false); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Command("ping", "-c", "1", "-W", "1", "beta").CombinedOutput(); err == nil {
		t.Fatalf("ping across a partition succeeded: %s", out)
	}
	if err := n.SetLink("beta", true); err != nil {
		t.Fatal(err)
	}
	// The link comes back asynchronously (carrier, neighbour entries):
	// ping until the first reply; -w is a deadline, not a speed target.
	if out, err := a.Command("ping", "-c", "1", "-i", "0.2", "-w", "30", "beta").CombinedOutput(); err != nil {
		t.Fatalf("ping after heal: %v: %s", err, out)
	}
	hosts, _ := os.ReadFile("/etc/netns/" + a.Netns + "/hosts")
	if !strings.Contains(string(hosts), "beta") {
		t.Fatalf("hosts file lacks beta: %s", hosts)
	}
}

func TestHostDialFromNamespace(t *testing.T) {
	_, a, b := alphaBeta(t, "tbd", "10.231.8.0/24")
	srv := b.Command("python3", "-c", "import http.server as h; h.HTTPServer(('0.0.0.0', 8123), h.SimpleHTTPRequestHandler).serve_forever()")
	srv.Dir = t.TempDir()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	client := a.HTTPClient(2 * time.Second)
	// The server gives no signal that it listens: poll.
	testenv.Eventually(t, time.Minute, func() bool {
		resp, err := client.Get("http://" + b.Addr.String() + ":8123/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "GET from alpha's namespace to beta's server never succeeded")
}

// hogEnv makes the test binary a process that holds hogSize of touched
// memory until killed (TestHelperHog): its exit takes the kernel a while.
const (
	hogEnv  = "DYDISNIX_TESTBED_HOG"
	hogSize = 128 << 20
)

// TestHelperHog is not a test: run with hogEnv, it is the process that
// TestKillAllWaitsForTheKilled kills.
func TestHelperHog(t *testing.T) {
	if os.Getenv(hogEnv) == "" {
		return
	}
	b := make([]byte, hogSize)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	fmt.Println("started")
	time.Sleep(time.Hour) // not select{}: the runtime would end a process where nothing can wake
	runtime.KeepAlive(b)
}

// KillAll returns once the processes it killed have exited: right after,
// the namespace holds none (down's check that nothing is left, and a next
// up in the same directory, found processes on their way out). Each
// process holds 128 MB, which the kernel takes a while to free.
func TestKillAllWaitsForTheKilled(t *testing.T) {
	_, a, _ := alphaBeta(t, "tbk", "10.231.9.0/24")
	for range 3 {
		cmd := a.Command("env", hogEnv+"=1", os.Args[0], "-test.run=^TestHelperHog$")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if before, err := exec.Command("ip", "netns", "pids", a.Netns).Output(); err != nil || len(strings.Fields(string(before))) != 3 {
		t.Fatalf("before KillAll, the namespace holds %q (%v), want the 3 processes", before, err)
	}
	if err := a.KillAll(); err != nil {
		t.Fatal(err)
	}
	left, err := exec.Command("ip", "netns", "pids", a.Netns).Output()
	if err != nil {
		t.Fatal(err)
	}
	if pids := strings.Fields(string(left)); len(pids) > 0 {
		t.Errorf("right after KillAll, %d processes are in the namespace: %v", len(pids), pids)
	}
}
