// Package etcdtest starts real etcd servers (Debian's etcd-server package) for
// tests: one member or a cluster of several, on loopback, each member with a
// data directory of its own under the test's temporary directory. Nothing is
// simulated: members can be killed and restarted to test what survives.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// Member is one etcd server of a Cluster.
type Member struct {
	// Name is the member's name in the cluster (m0, m1, …).
	Name string
	// ClientURL is where clients reach the member (http://127.0.0.1:port).
	ClientURL string
	// PeerURL is where the other members reach it.
	PeerURL string

	dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a running set of etcd members started by Start.
type Cluster struct {
	// Members are the cluster's servers, in the order they were named.
	Members []*Member
	t       testing.TB
}

// MemberArgs returns the etcd command line of one member of a new cluster:
// its name, data directory, its client and peer URLs, and the initial cluster
// ("m0=http://…,m1=http://…"). Heartbeat and election timeouts are etcd's
// defaults (100 ms, 1 s), the figures a deployment would use.
func MemberArgs(name, dataDir, clientURL, peerURL, initialCluster string) []string {
	return []string{
		"--name", name,
		"--data-dir", dataDir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", initialCluster,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "dydisnix-test",
		"--logger", "zap",
		"--log-outputs", filepath.Join(dataDir, "..", name+".log"),
	}
}

// Start starts an n-member etcd cluster on loopback and waits until every
// member answers. It calls testenv.Missing when the etcd binary is not
// installed, and stops the members when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	testenv.NeedCommand(t, "etcd")
	if n < 1 {
		t.Fatalf("etcdtest: a cluster needs at least one member, got %d", n)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a port taken between choosing and binding
		c, err := start(t, n)
		if err == nil {
			return c
		}
		lastErr = err
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return nil
}

func start(t testing.TB, n int) (*Cluster, error) {
	root := t.TempDir()
	c := &Cluster{t: t}
	var initial []string
	for i := 0; i < n; i++ {
		cp, err := testenv.PickPort()
		if err != nil {
			return nil, err
		}
		pp, err := testenv.PickPort()
		if err != nil {
			return nil, err
		}
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp),
		}
		m.dir = filepath.Join(root, m.Name, "data")
		if err := os.MkdirAll(m.dir, 0o700); err != nil {
			return nil, err
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.args = MemberArgs(m.Name, m.dir, m.ClientURL, m.PeerURL, strings.Join(initial, ","))
		if err := m.start(); err != nil {
			c.stop()
			return nil, err
		}
	}
	t.Cleanup(c.stop)
	if err := c.waitReady(60 * time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (m *Member) start() error {
	m.cmd = exec.Command("etcd", m.args...)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(m.cmd, m.done)
	return nil
}

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Client returns a client of the whole cluster, closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatalf("etcdtest: client: %v", err)
	}
	c.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Kill sends SIGKILL to member i and waits until it has exited.
func (c *Cluster) Kill(i int) {
	m := c.Members[i]
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// Restart starts member i again on its data directory (after Kill) and waits
// until it answers.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.Members[i]
	if m.cmd != nil {
		c.t.Fatalf("etcdtest: member %s is running", m.Name)
	}
	if err := m.start(); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
	if err := waitMember(m, 60*time.Second); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
}

// Log returns what member i has logged so far, for a failing test's message.
func (c *Cluster) Log(i int) string {
	m := c.Members[i]
	b, _ := os.ReadFile(filepath.Join(m.dir, "..", m.Name+".log"))
	return string(b)
}

func (c *Cluster) stop() {
	for i := range c.Members {
		c.Kill(i)
	}
}

func (c *Cluster) waitReady(timeout time.Duration) error {
	for i, m := range c.Members {
		if err := waitMember(m, timeout); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(c.Log(i), 2000))
		}
	}
	return nil
}

// waitMember waits until the member serves a linearizable read, which needs
// a leader, so a member that answers is part of a working cluster.
func waitMember(m *Member, timeout time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: timeout})
	if err != nil {
		return fmt.Errorf("client of member %s: %w", m.Name, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(attempt, "/etcdtest/ready")
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("etcd member %s exited before it was ready", m.Name)
		case <-ctx.Done():
			return fmt.Errorf("etcd member %s not ready within %v: %w", m.Name, timeout, errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
