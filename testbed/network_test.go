package testbed

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
}

func TestNetworkHostsReachEachOther(t *testing.T) {
	needRoot(t)
	n, err := NewNetwork(RandomPrefix("tbt"), netip.MustParsePrefix("10.231.7.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	a, err := n.AddHost("alpha")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddHost("beta"); err != nil {
		t.Fatal(err)
	}
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
	if out, err := a.Command("ping", "-c", "1", "-W", "2", "beta").CombinedOutput(); err != nil {
		t.Fatalf("ping after heal: %v: %s", err, out)
	}
	hosts, _ := os.ReadFile("/etc/netns/" + a.Netns + "/hosts")
	if !strings.Contains(string(hosts), "beta") {
		t.Fatalf("hosts file lacks beta: %s", hosts)
	}
}
