package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Network is a private layer-2 network of network namespaces: one bridge
// namespace holding a bridge, and one namespace per host joined to it by a
// veth pair. Nothing is attached to the host's own interfaces, and the subnet
// exists only inside these namespaces.
type Network struct {
	// Prefix starts every namespace and link name of this network.
	Prefix string
	// Subnet is the IPv4 /24 the hosts get addresses in.
	Subnet netip.Prefix

	mu    sync.Mutex
	hosts map[string]*Host
	next  int
	// routes are added to every host (a router's other subnets).
	routes []route
}

// route sends Dst through the gateway Via.
type route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// Host is one namespace on the network.
type Host struct {
	Name   string     // the host name (resolvable from every namespace of the network)
	Netns  string     // the network namespace
	Addr   netip.Addr // its address on the bridge
	Iface  string     // its interface inside the namespace
	bridge string     // the bridge-side end of its veth
}

func run(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// RandomPrefix returns a short unique prefix for namespace names.
func RandomPrefix(base string) string {
	var b [3]byte
	rand.Read(b[:])
	return base + hex.EncodeToString(b[:])
}

// NewNetwork creates the bridge namespace of a new network. Close removes
// every namespace it made.
func NewNetwork(prefix string, subnet netip.Prefix) (*Network, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("testbed network: needs root (or run inside 'unshare --user --map-root-user --net --mount')")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("testbed network: the ip command (iproute2) is not on PATH")
	}
	n := &Network{Prefix: prefix, Subnet: subnet.Masked(), hosts: map[string]*Host{}, next: 2}
	br := n.bridgeNetns()
	steps := [][]string{
		{"ip", "netns", "add", br},
		{"ip", "-n", br, "link", "set", "lo", "up"},
		{"ip", "-n", br, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", br, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"ip", "-n", br, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			n.Close()
			return nil, fmt.Errorf("create network %s: %w", prefix, err)
		}
	}
	return n, nil
}

func (n *Network) bridgeNetns() string { return n.Prefix + "-br" }

// AddHost creates a namespace for name, joins it to the bridge, gives it the
// next free address and makes every host name resolvable inside it.
func (n *Network) AddHost(name string) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.hosts[name]; dup {
		return nil, fmt.Errorf("host %s exists already", name)
	}
	addr, idx, err := n.nextAddrLocked()
	if err != nil {
		return nil, fmt.Errorf("add host %s: %w", name, err)
	}
	h := &Host{
		Name:   name,
		Netns:  n.Prefix + "-" + name,
		Addr:   addr,
		Iface:  "eth0",
		bridge: fmt.Sprintf("v%s%d", n.Prefix, idx),
	}
	if len(h.bridge) > 15 {
		h.bridge = h.bridge[len(h.bridge)-15:]
	}
	br := n.bridgeNetns()
	tmp := fmt.Sprintf("t%s%d", n.Prefix, idx)
	if len(tmp) > 15 {
		tmp = tmp[len(tmp)-15:]
	}
	steps := [][]string{
		{"ip", "netns", "add", h.Netns},
		{"ip", "-n", h.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", h.Netns, "link", "set", "lo", "multicast", "on"},
		{"ip", "-n", br, "link", "add", h.bridge, "type", "veth", "peer", "name", tmp},
		{"ip", "-n", br, "link", "set", tmp, "netns", h.Netns},
		{"ip", "-n", h.Netns, "link", "set", tmp, "name", h.Iface},
		{"ip", "-n", br, "link", "set", h.bridge, "master", "br0"},
		{"ip", "-n", br, "link", "set", h.bridge, "up"},
		{"ip", "-n", h.Netns, "addr", "add", fmt.Sprintf("%s/%d", h.Addr, n.Subnet.Bits()), "dev", h.Iface},
		{"ip", "-n", h.Netns, "link", "set", h.Iface, "multicast", "on"},
		{"ip", "-n", h.Netns, "link", "set", h.Iface, "up"},
		// mDNS is multicast: route 224.0.0.0/4 out of the bridge interface.
		{"ip", "-n", h.Netns, "route", "add", "224.0.0.0/4", "dev", h.Iface},
	}
	for _, r := range n.routes {
		steps = append(steps, []string{"ip", "-n", h.Netns, "route", "add", r.Dst.String(), "via", r.Via.String()})
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			run("ip", "netns", "del", h.Netns)
			return nil, fmt.Errorf("add host %s: %w", name, err)
		}
	}
	n.hosts[name] = h
	if err := n.writeHostsLocked(); err != nil && !errors.Is(err, fs.ErrPermission) {
		// Inside an unprivileged user namespace /etc/netns is read-only:
		// names then do not resolve, and services use the address property.
		return nil, err
	}
	return h, nil
}

// nextAddrLocked reserves the next free address of the subnet.
func (n *Network) nextAddrLocked() (netip.Addr, int, error) {
	if n.next > 250 {
		return netip.Addr{}, 0, fmt.Errorf("network %s is full", n.Prefix)
	}
	base := n.Subnet.Addr().As4()
	base[3] = byte(n.next)
	n.next++
	return netip.AddrFrom4(base), n.next - 1, nil
}

// Router joins two networks: a namespace named name on n with a second
// interface (eth1) on other, IP forwarding on, and a route to the other
// subnet through it on every host of both, present and future. Multicast
// is not forwarded, so mDNS stays on each side. It returns the router's
// host on n and its address on other.
func (n *Network) Router(name string, other *Network) (*Host, netip.Addr, error) {
	h, err := n.AddHost(name)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	other.mu.Lock()
	addr, idx, err := other.nextAddrLocked()
	other.mu.Unlock()
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("router %s: %w", name, err)
	}
	peer := fmt.Sprintf("v%s%d", other.Prefix, idx)
	if len(peer) > 15 {
		peer = peer[len(peer)-15:]
	}
	tmp := fmt.Sprintf("t%s%d", other.Prefix, idx)
	if len(tmp) > 15 {
		tmp = tmp[len(tmp)-15:]
	}
	br := other.bridgeNetns()
	steps := [][]string{
		{"ip", "-n", br, "link", "add", peer, "type", "veth", "peer", "name", tmp},
		{"ip", "-n", br, "link", "set", tmp, "netns", h.Netns},
		{"ip", "-n", h.Netns, "link", "set", tmp, "name", "eth1"},
		{"ip", "-n", br, "link", "set", peer, "master", "br0"},
		{"ip", "-n", br, "link", "set", peer, "up"},
		{"ip", "-n", h.Netns, "addr", "add", fmt.Sprintf("%s/%d", addr, other.Subnet.Bits()), "dev", "eth1"},
		{"ip", "-n", h.Netns, "link", "set", "eth1", "up"},
		{"ip", "netns", "exec", h.Netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, netip.Addr{}, fmt.Errorf("router %s: %w", name, err)
		}
	}
	if err := n.addRoute(route{Dst: other.Subnet, Via: h.Addr}, name); err != nil {
		return nil, netip.Addr{}, err
	}
	if err := other.addRoute(route{Dst: n.Subnet, Via: addr}, ""); err != nil {
		return nil, netip.Addr{}, err
	}
	return h, addr, nil
}

// addRoute adds r to every host but skip, and to every host added later.
func (n *Network) addRoute(r route, skip string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routes = append(n.routes, r)
	for name, h := range n.hosts {
		if name == skip {
			continue
		}
		if err := run("ip", "-n", h.Netns, "route", "add", r.Dst.String(), "via", r.Via.String()); err != nil {
			return fmt.Errorf("route to %s on %s: %w", r.Dst, name, err)
		}
	}
	return nil
}

// writeHostsLocked writes /etc/netns/<ns>/hosts for every host, which
// 'ip netns exec' bind-mounts over /etc/hosts, so host names resolve.
func (n *Network) writeHostsLocked() error {
	names := make([]string, 0, len(n.hosts))
	for name := range n.hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for _, name := range names {
		fmt.Fprintf(&b, "%s %s\n", n.hosts[name].Addr, name)
	}
	for _, h := range n.hosts {
		dir := filepath.Join("/etc/netns", h.Netns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("hosts file for %s: %w", h.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("hosts file for %s: %w", h.Name, err)
		}
	}
	return nil
}

// Host returns a host by name.
func (n *Network) Host(name string) (*Host, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	return h, ok
}

// SetLink takes a host's link to the bridge down (partition) or up (heal).
func (n *Network) SetLink(name string, up bool) error {
	h, ok := n.Host(name)
	if !ok {
		return fmt.Errorf("no host %s", name)
	}
	state := "down"
	if up {
		state = "up"
	}
	if err := run("ip", "-n", n.bridgeNetns(), "link", "set", h.bridge, state); err != nil {
		return fmt.Errorf("set link of %s %s: %w", name, state, err)
	}
	return nil
}

// Command returns a command that runs inside a host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Netns, name}, args...)...)
}

// killWait bounds how long KillAll waits for the processes it killed to
// be gone.
const killWait = 10 * time.Second

// KillAll kills every process in the host's namespace (SIGKILL, through a
// pidfd) and waits, at most killWait, until they have exited: a caller
// that looks right after (down's check that nothing is left, a next up in
// the same directory) no longer finds processes on their way out.
func (h *Host) KillAll() error {
	fds, err := h.kill()
	return errors.Join(err, waitExited(h.Name, fds, time.Now().Add(killWait)))
}

// kill sends SIGKILL to every process in the host's namespace and returns
// their pidfds, for waitExited. A pid is signalled through its pidfd, once
// its namespace is checked again: a pid that another process took since
// the list was read is left alone.
func (h *Host) kill() ([]unix.PollFd, error) {
	out, err := exec.Command("ip", "netns", "pids", h.Netns).Output()
	if err != nil {
		return nil, fmt.Errorf("list processes of %s: %w", h.Name, err)
	}
	ns, err := os.Stat(filepath.Join("/run/netns", h.Netns))
	if err != nil {
		return nil, fmt.Errorf("namespace of %s: %w", h.Name, err)
	}
	self := os.Getpid()
	var fds []unix.PollFd
	var errs []error
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == self {
			continue // never ourselves, whatever thread visited the namespace
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // gone already
		}
		if err != nil { // no pidfds here: a plain kill, not waited for
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %d in %s: %w", pid, h.Name, err))
			}
			continue
		}
		if cur, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || !os.SameFile(cur, ns) {
			unix.Close(fd) // exited, or the pid is another process's now
			continue
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
			unix.Close(fd)
			if !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %d in %s: %w", pid, h.Name, err))
			}
			continue
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	return fds, errors.Join(errs...)
}

// waitExited waits until the processes of the pidfds fds (of host name)
// have exited, or deadline passes, and closes the pidfds.
func waitExited(name string, fds []unix.PollFd, deadline time.Time) error {
	defer func() {
		for _, p := range fds {
			unix.Close(int(p.Fd))
		}
	}()
	// A pidfd is readable once its process has exited.
	for len(fds) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s: %d killed processes still there at the deadline", name, len(fds))
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("%s: wait for the killed processes: %w", name, err)
		}
		if n <= 0 {
			continue
		}
		kept := fds[:0]
		for _, p := range fds {
			if p.Revents != 0 {
				unix.Close(int(p.Fd))
				continue
			}
			kept = append(kept, p)
		}
		fds = kept
	}
	return nil
}

// RemoveHost kills what runs in a host's namespace and deletes it.
func (n *Network) RemoveHost(name string) error {
	n.mu.Lock()
	h, ok := n.hosts[name]
	delete(n.hosts, name)
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("no host %s", name)
	}
	h.KillAll()
	os.RemoveAll(filepath.Join("/etc/netns", h.Netns))
	return run("ip", "netns", "del", h.Netns)
}

// Close kills everything in the network's namespaces and deletes them.
func (n *Network) Close() error {
	n.mu.Lock()
	names := make([]string, 0, len(n.hosts))
	for name := range n.hosts {
		names = append(names, name)
	}
	n.mu.Unlock()
	var first error
	for _, name := range names {
		if err := n.RemoveHost(name); err != nil && first == nil {
			first = err
		}
	}
	if err := run("ip", "netns", "del", n.bridgeNetns()); err != nil && first == nil {
		first = err
	}
	return first
}

// CleanupStale deletes the namespaces of the network with this prefix (left
// over by a testbed that was killed): those named prefix-*.
func CleanupStale(prefix string) {
	prefix += "-"
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			h := &Host{Netns: f[0]}
			h.KillAll()
			run("ip", "netns", "del", f[0])
			os.RemoveAll(filepath.Join("/etc/netns", f[0]))
		}
	}
}
