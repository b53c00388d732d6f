package testbed

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/dydisnix/dydisnix/internal/etcdtest"
)

// The testbed beyond one LAN: an etcd cluster (each member in a namespace
// of its own on the coordinator's subnet) and a far subnet behind a router
// namespace, where mDNS cannot reach and machines are found through their
// etcd registration.

// DefaultFarSubnet is the far subnet's default.
var DefaultFarSubnet = netip.MustParsePrefix("10.232.0.0/24")

// RegistryTTL is the registration lease TTL the testbed's agents use:
// etcd's default of 3 s.
const RegistryTTL = 3 * time.Second

// etcdMember is one etcd server of the testbed.
type etcdMember struct {
	name string
	host *Host
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startEtcd starts n members, each in a namespace of its own on the near
// subnet, and waits until the cluster answers from the coordinator's
// namespace.
func (tb *Testbed) startEtcd(n int) error {
	var initial []string
	for i := 1; i <= n; i++ {
		h, err := tb.net.AddHost(fmt.Sprintf("etcd%d", i))
		if err != nil {
			return err
		}
		m := &etcdMember{name: h.Name, host: h}
		initial = append(initial, fmt.Sprintf("%s=http://%s:2380", m.name, h.Addr))
		tb.etcd = append(tb.etcd, m)
	}
	for _, m := range tb.etcd {
		dir := filepath.Join(tb.cfg.Dir, "etcd", m.name)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("etcd member %s: %w", m.name, err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			return fmt.Errorf("etcd member %s: %w", m.name, err)
		}
		m.args = etcdtest.MemberArgs(m.name, filepath.Join(dir, "data"), fmt.Sprintf("http://%s:2379", m.host.Addr),
			fmt.Sprintf("http://%s:2380", m.host.Addr), strings.Join(initial, ","))
		m.log = filepath.Join(dir, m.name+".log")
		if err := m.start(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := tb.EtcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(actx, "/dydisnix/ready")
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the testbed's etcd cluster did not answer within a minute: %w (logs in %s)", err, filepath.Join(tb.cfg.Dir, "etcd"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (m *etcdMember) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := m.host.Command("etcd", m.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	return nil
}

// kill sends SIGKILL to the member's processes and waits for its exit.
func (m *etcdMember) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	m.host.KillAll()
	<-done
}

// RegistryURL is the --registry value of the testbed's etcd cluster
// ("" without one).
func (tb *Testbed) RegistryURL() string {
	if len(tb.etcd) == 0 {
		return ""
	}
	var hosts []string
	for _, m := range tb.etcd {
		hosts = append(hosts, net.JoinHostPort(m.host.Addr.String(), "2379"))
	}
	return "etcd://" + strings.Join(hosts, ",")
}

// RegistryArgs are the registry flags of the testbed's agents and
// coordinators (none without etcd).
func (tb *Testbed) RegistryArgs() []string {
	if len(tb.etcd) == 0 {
		return nil
	}
	return []string{"--registry", tb.RegistryURL(), "--registry-ttl", RegistryTTL.String()}
}

// EtcdEndpoints are the client URLs of the testbed's etcd members.
func (tb *Testbed) EtcdEndpoints() []string {
	var eps []string
	for _, m := range tb.etcd {
		eps = append(eps, fmt.Sprintf("http://%s:2379", m.host.Addr))
	}
	return eps
}

// EtcdClient returns a client of the testbed's etcd cluster whose
// connections start in the coordinator's namespace (the caller closes it).
func (tb *Testbed) EtcdClient() (*clientv3.Client, error) {
	if len(tb.etcd) == 0 {
		return nil, fmt.Errorf("the testbed runs no etcd (Config.Etcd)")
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return tb.coord.DialContext(ctx, "tcp", addr)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: tb.EtcdEndpoints(), DialTimeout: 5 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// KillEtcd kills etcd member i (0-based) with SIGKILL; RestartEtcd starts
// it again on its data directory.
func (tb *Testbed) KillEtcd(i int) error {
	if i < 0 || i >= len(tb.etcd) {
		return fmt.Errorf("no etcd member %d (the testbed runs %d)", i, len(tb.etcd))
	}
	tb.etcd[i].kill()
	return nil
}

// RestartEtcd starts a killed etcd member again.
func (tb *Testbed) RestartEtcd(i int) error {
	if i < 0 || i >= len(tb.etcd) {
		return fmt.Errorf("no etcd member %d (the testbed runs %d)", i, len(tb.etcd))
	}
	return tb.etcd[i].start()
}

// EtcdLog returns what etcd member i logged, for a failing test's message.
func (tb *Testbed) EtcdLog(i int) string {
	b, _ := os.ReadFile(tb.etcd[i].log)
	return string(b)
}

// startFar creates the far subnet and the router namespace that joins it
// to the near one.
func (tb *Testbed) startFar(subnet netip.Prefix) error {
	far, err := NewNetwork(tb.cfg.Prefix+"-far", subnet)
	if err != nil {
		return err
	}
	tb.far = far
	if _, _, err := tb.net.Router("router", far); err != nil {
		return err
	}
	return nil
}

// AddFar starts a machine on the far subnet: the coordinator can reach it
// through the router, but its mDNS announcements stay on its own link, so
// it is found only through its etcd registration.
func (tb *Testbed) AddFar(name string, props map[string]any) (*Machine, error) {
	if tb.far == nil {
		return nil, fmt.Errorf("add far machine %s: the testbed has no far subnet (Config.FarSubnet)", name)
	}
	return tb.add(tb.far, name, props)
}

// Far reports whether a machine is on the far subnet.
func (tb *Testbed) Far(name string) bool {
	if tb.far == nil {
		return false
	}
	_, ok := tb.far.Host(name)
	return ok
}

// EtcdLeader returns the index of the etcd member that leads the cluster.
func (tb *Testbed) EtcdLeader(ctx context.Context) (int, error) {
	cli, err := tb.EtcdClient()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	for i, ep := range tb.EtcdEndpoints() {
		st, err := cli.Status(ctx, ep)
		if err == nil && st.Header.MemberId == st.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no etcd member says it leads")
}
