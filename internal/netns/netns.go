// Package netns makes Linux network namespaces for tests and the testbed:
// single namespaces with multicast on lo, and small networks of namespaces
// joined by a bridge that itself lives in a namespace of its own, so nothing
// ever touches the host's interfaces, routes or addresses.
//
// Every namespace gets a unique name (prefix + random suffix); addresses
// come from a private 10.x.y.0/24 subnet that exists only inside the
// namespaces made here. Creating namespaces needs root (CAP_SYS_ADMIN) and
// the ip command (iproute2); Available says whether both are there.
//
// Typical use in a test:
//
//	nw := netns.NewNetworkT(t, "ddt", 3) // skips when not root
//	cmd := nw.Nodes[0].Command(ctx, "/path/to/publisher", "--interface", nw.Nodes[0].Interface)
//
// and, to run a test's own Go code inside a namespace:
//
//	if !netns.Inside(t) {
//		netns.NewT(t, "ddt").RerunTest(t)
//		return
//	}
//	// ... the rest of the test runs in the namespace
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Available returns nil when this process can create namespaces.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (run the tests as root, as CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is not on PATH")
	}
	return nil
}

// Namespace is one named network namespace (ip netns).
type Namespace struct {
	Name string

	mu      sync.Mutex
	deleted bool
}

func randSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ip runs the ip command and returns its error with its output.
func ip(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// New creates a namespace named prefix-<random> with lo up and multicast on.
func New(prefix string) (*Namespace, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	n := &Namespace{Name: prefix + "-" + randSuffix()}
	if err := ip("netns", "add", n.Name); err != nil {
		return nil, err
	}
	if err := ip("-n", n.Name, "link", "set", "lo", "up", "multicast", "on"); err != nil {
		n.Delete()
		return nil, err
	}
	// Multicast sent on lo needs a route for the multicast range.
	if err := ip("-n", n.Name, "route", "add", "224.0.0.0/4", "dev", "lo"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// Delete removes the namespace (processes still inside keep it alive until
// they exit; kill them first). Deleting twice is harmless.
func (n *Namespace) Delete() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	n.deleted = true
	return ip("netns", "delete", n.Name)
}

// Command returns a command that runs name with args inside the namespace
// (through "ip netns exec").
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns an error with its
// output when it fails.
func (n *Namespace) Run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := n.Command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s in %s: %w: %s", name, n.Name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// SetLink sets an interface of the namespace up or down.
func (n *Namespace) SetLink(ifname string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", n.Name, "link", "set", ifname, state)
}

// Network is a set of node namespaces, each with one interface (eth0) on a
// bridge that lives in its own hub namespace.
type Network struct {
	Prefix string
	Hub    *Namespace
	// Subnet is the private /24 prefix, e.g. "10.251.17" (addresses .1–.254).
	Subnet string
	Nodes  []*Node

	mu sync.Mutex
}

// Node is one machine of a Network.
type Node struct {
	*Namespace
	// Interface is the node's interface on the bridge ("eth0").
	Interface string
	// Addr is the node's IPv4 address (without prefix length).
	Addr string
	// hubPort is the bridge-side veth, in the hub namespace.
	hubPort string
	net     *Network
}

const bridgeName = "br0"

// NewNetwork makes a hub namespace with a bridge and n nodes on it. On error
// everything made so far is removed.
func NewNetwork(prefix string, n int) (*Network, error) {
	hub, err := New(prefix + "-hub")
	if err != nil {
		return nil, err
	}
	b := make([]byte, 2)
	rand.Read(b)
	nw := &Network{Prefix: prefix, Hub: hub, Subnet: fmt.Sprintf("10.%d.%d", 200+int(b[0])%50, b[1])}
	if err := ip("-n", hub.Name, "link", "add", bridgeName, "type", "bridge"); err != nil {
		nw.Close()
		return nil, err
	}
	// No multicast snooping: mDNS must reach every port at once.
	_ = ip("-n", hub.Name, "link", "set", bridgeName, "type", "bridge", "mcast_snooping", "0")
	if err := ip("-n", hub.Name, "link", "set", bridgeName, "up"); err != nil {
		nw.Close()
		return nil, err
	}
	for i := 0; i < n; i++ {
		if _, err := nw.AddNode(); err != nil {
			nw.Close()
			return nil, err
		}
	}
	return nw, nil
}

// AddNode adds one node namespace to the network.
func (nw *Network) AddNode() (*Node, error) {
	nw.mu.Lock()
	idx := len(nw.Nodes) + 1
	nw.mu.Unlock()
	if idx > 250 {
		return nil, errors.New("a network holds at most 250 nodes")
	}
	ns, err := New(fmt.Sprintf("%s-n%d", nw.Prefix, idx))
	if err != nil {
		return nil, err
	}
	nd := &Node{Namespace: ns, Interface: "eth0", Addr: fmt.Sprintf("%s.%d", nw.Subnet, idx), hubPort: fmt.Sprintf("p%d", idx), net: nw}
	steps := [][]string{
		{"-n", nw.Hub.Name, "link", "add", nd.hubPort, "type", "veth", "peer", "name", nd.Interface, "netns", ns.Name},
		{"-n", nw.Hub.Name, "link", "set", nd.hubPort, "master", bridgeName},
		{"-n", nw.Hub.Name, "link", "set", nd.hubPort, "up"},
		{"-n", ns.Name, "addr", "add", nd.Addr + "/24", "dev", nd.Interface},
		{"-n", ns.Name, "link", "set", nd.Interface, "up", "multicast", "on"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			ns.Delete()
			return nil, err
		}
	}
	nw.mu.Lock()
	nw.Nodes = append(nw.Nodes, nd)
	nw.mu.Unlock()
	return nd, nil
}

// Disconnect pulls the node's cable (its bridge port goes down): packets
// stop in both directions, the node's processes keep running.
func (nd *Node) Disconnect() error { return nd.net.Hub.SetLink(nd.hubPort, false) }

// Reconnect plugs the cable back in.
func (nd *Node) Reconnect() error { return nd.net.Hub.SetLink(nd.hubPort, true) }

// Close deletes every namespace of the network.
func (nw *Network) Close() error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var errs []error
	for _, nd := range nw.Nodes {
		if err := nd.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := nw.Hub.Delete(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Sweep deletes leftover namespaces whose names start with prefix+"-" (from
// a run that was killed before its cleanup). It returns the names deleted.
func Sweep(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var deleted []string
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix+"-") {
			continue
		}
		if err := ip("netns", "delete", f[0]); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, f[0])
	}
	return deleted, errors.Join(errs...)
}
