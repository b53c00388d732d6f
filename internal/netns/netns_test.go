package netns

import (
	"context"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os/exec"
	"strings"
	"testing"
)

func TestNetwork(t *testing.T) {
	nw := NewNetworkT(t, "ddnt", 2)
	a, b := nw.Nodes[0], nw.Nodes[1]
	if err := a.Run("ping", "-c", "1", "-W", "2", b.Addr); err != nil {
		t.Fatalf("nodes cannot reach each other: %v", err)
	}
	// The subnet exists only inside the namespaces.
	out, _ := exec.Command("ip", "route", "get", b.Addr).CombinedOutput()
	if strings.Contains(string(out), "dev "+nw.Subnet) || strings.Contains(string(out), "br0") {
		t.Fatalf("host has a route into the test subnet: %s", out)
	}
	if err := b.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if err := a.Run("ping", "-c", "1", "-W", "1", b.Addr); err == nil {
		t.Fatal("ping succeeded through a disconnected port")
	}
	if err := b.Reconnect(); err != nil {
		t.Fatal(err)
	}
	out2, err := a.Command(context.Background(), "ip", "-o", "link", "show", "lo").CombinedOutput()
	if err != nil || !strings.Contains(string(out2), "MULTICAST") {
		t.Fatalf("lo without multicast: %s %v", out2, err)
	}
}

func TestCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		name = NewT(t, "ddnc").Name
	})
	if name == "" {
		testenv.Missing(t, "namespaces not available")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), name) {
		t.Fatalf("namespace %s left behind", name)
	}
}

func TestRerunTest(t *testing.T) {
	if !Inside(t) {
		NewT(t, "ddnr").RerunTest(t)
		return
	}
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; n != 1 {
		t.Fatalf("inside a fresh namespace only lo exists, got %d links:\n%s", n, out)
	}
}

func TestSweep(t *testing.T) {
	if err := Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	prefix := "ddsw" + randSuffix()
	n, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Delete() })
	deleted, err := Sweep(prefix)
	if err != nil || len(deleted) != 1 || deleted[0] != n.Name {
		t.Fatalf("Sweep = %v, %v; want [%s]", deleted, err, n.Name)
	}
}
