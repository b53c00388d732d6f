// Package testbed runs a simulated network of machines on one host: every
// machine is a network namespace on a private bridge running a real
// dydisnix-agent that announces itself over mDNS, and the coordinator has a
// namespace of its own. It is used by the demo and the end-to-end tests.
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/model"
)

// Config configures a testbed.
type Config struct {
	// Dir holds the testbed's files: token, machine state, logs.
	Dir string
	// BinDir holds dydisnix-agent and the example service binaries; default:
	// the directory of the running executable.
	BinDir string
	// Prefix starts every namespace name; default a random "dtb" prefix.
	Prefix string
	// Subnet is the private /24 of the testbed; default 10.231.0.0/24,
	// which exists only inside the testbed's namespaces.
	Subnet netip.Prefix
	// AgentPort is the port every agent listens on (default 9100).
	AgentPort int
	// DrainTimeout bounds a graceful stop (default 20 s).
	DrainTimeout time.Duration
	// ExtraAgentArgs are appended to every agent's command line.
	ExtraAgentArgs []string
	// AgentEnv is added to every agent's environment ("NAME=value", where
	// "{machine}" stands for the machine's name; the fault tests set the
	// test-only fault hook's directory with it).
	AgentEnv []string
	// InsecureHTTP runs the agents and the coordinator over plain HTTP
	// (--insecure-http on both sides). By default the testbed creates a
	// fleet CA in Dir/tls, an agent certificate per machine (named after
	// its hostname, with its address) and a coordinator certificate, and
	// everything runs over mutual TLS.
	InsecureHTTP bool
	// Etcd is the number of etcd members started (0: none), each in a
	// namespace of its own on the near subnet. With etcd every agent also
	// registers there (--registry), and the coordinators read it.
	Etcd int
	// FarSubnet, when valid, is a second subnet behind a router namespace
	// (AddFar): reachable by IP, but mDNS does not cross the router.
	FarSubnet netip.Prefix
	// Containers are the containers every machine runs besides its agent
	// (ContainerMySQL: a real MariaDB server of its own;
	// ContainerPostgreSQL: a PostgreSQL server), announced with the
	// machine's properties (port and socket, no credentials) and added to
	// its supportedTypes.
	Containers []string
	// MySQLAccounts are the accounts every MariaDB server provides besides
	// the administrator, as a server's configuration would (NixOS's
	// services.mysql.ensureUsers): each named like its database, with
	// that name as password and every privilege on that database. They
	// exist on every server, so a database moved by a dump (which holds
	// no accounts) finds its account wherever it lands.
	MySQLAccounts []string
}

// Testbed is a running simulated network.
type Testbed struct {
	cfg       Config
	net       *Network
	far       *Network // the far subnet (nil: none)
	etcd      []*etcdMember
	coord     *Host
	tokenFile string
	tlsDir    string // the fleet's certificates; "" with InsecureHTTP

	mu       sync.Mutex
	machines map[string]*Machine
	count    int
	onClose  []func()
	// statusURL is the loop's page as seen from the host, loop the loop
	// (daemon only).
	statusURL string
	loop      *Harness

	// The database servers' template data directories (see mysqlTemplate,
	// pgTemplate).
	mysqlOnce, pgOnce sync.Once
	mysqlDir, pgDir   string
	mysqlErr, pgErr   error
}

// Machine is one simulated machine.
type Machine struct {
	Name       string
	Host       *Host
	Properties map[string]any
	// Containers are the announced containers (Config.Containers).
	Containers map[string]any
	StateDir   string
	LogFile    string

	servers map[string]*dbServer // by container, see Config.Containers
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Running reports whether the machine's agent process still runs.
func (m *Machine) Running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// New creates the testbed's network and the coordinator's namespace.
func New(cfg Config) (*Testbed, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("testbed: Config.Dir is required")
	}
	if cfg.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("testbed: locate binaries: %w", err)
		}
		cfg.BinDir = filepath.Dir(exe)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = RandomPrefix("dtb")
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = netip.MustParsePrefix("10.231.0.0/24")
	}
	if cfg.AgentPort == 0 {
		cfg.AgentPort = 9100
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 20 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := CheckContainers(cfg.Containers); err != nil {
		return nil, err
	}
	if slices.Contains(cfg.Containers, ContainerPostgreSQL) {
		if err := pgReachable(cfg.Dir); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
	}
	for _, a := range cfg.MySQLAccounts {
		if !sqlName.MatchString(a) {
			return nil, fmt.Errorf("testbed: MariaDB account %q: expected letters, digits and _ only", a)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.BinDir, "dydisnix-agent")); err != nil {
		return nil, fmt.Errorf("testbed: dydisnix-agent not found in %s (run 'make build'): %w", cfg.BinDir, err)
	}
	tb := &Testbed{cfg: cfg, machines: map[string]*Machine{}}
	var token [24]byte
	rand.Read(token[:])
	tb.tokenFile = filepath.Join(cfg.Dir, "agent-token")
	if err := os.WriteFile(tb.tokenFile, []byte(hex.EncodeToString(token[:])+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("testbed: write token: %w", err)
	}
	if !cfg.InsecureHTTP {
		tb.tlsDir = filepath.Join(cfg.Dir, "tls")
		o := fleettls.Options{Force: true}
		if err := fleettls.CreateCA(tb.tlsDir, "dydisnix testbed CA", o); err != nil {
			return nil, fmt.Errorf("testbed: fleet CA: %w", err)
		}
		if err := fleettls.CreateCert(tb.tlsDir, fleettls.CertRequest{Name: "coordinator", Coordinator: true}, o); err != nil {
			return nil, fmt.Errorf("testbed: coordinator certificate: %w", err)
		}
	}
	n, err := NewNetwork(cfg.Prefix, cfg.Subnet)
	if err != nil {
		return nil, err
	}
	tb.net = n
	coord, err := n.AddHost("coordinator")
	if err != nil {
		n.Close()
		return nil, err
	}
	tb.coord = coord
	if cfg.FarSubnet.IsValid() {
		if err := tb.startFar(cfg.FarSubnet); err != nil {
			tb.Close()
			return nil, err
		}
	}
	if cfg.Etcd > 0 {
		if err := tb.startEtcd(cfg.Etcd); err != nil {
			tb.Close()
			return nil, err
		}
	}
	return tb, nil
}

// TokenFile is the file holding the agents' bearer token.
func (tb *Testbed) TokenFile() string { return tb.tokenFile }

// CoordinatorArgs are the flags a coordinator (dydisnix-self-adapt,
// dydisnix-env, ...) needs to reach the testbed's agents: the fleet CA and
// the coordinator's certificate, or --insecure-http.
func (tb *Testbed) CoordinatorArgs() []string {
	if tb.tlsDir == "" {
		return []string{"--insecure-http"}
	}
	return []string{"--agent-ca-file", filepath.Join(tb.tlsDir, fleettls.CAFile),
		"--tls-cert", filepath.Join(tb.tlsDir, fleettls.CertFile("coordinator")),
		"--tls-key", filepath.Join(tb.tlsDir, fleettls.KeyFile("coordinator"))}
}

// agentTLSArgs creates the agent certificate of m (named after its
// hostname, valid for its address too) and returns the agent's TLS flags,
// or --insecure-http.
func (tb *Testbed) agentTLSArgs(m *Machine) ([]string, error) {
	if tb.tlsDir == "" {
		return []string{"--insecure-http"}, nil
	}
	name, _ := m.Properties["hostname"].(string)
	if name == "" {
		name = m.Name
	}
	req := fleettls.CertRequest{Name: name, Hosts: []string{m.Host.Addr.String()}}
	if err := fleettls.CreateCert(tb.tlsDir, req, fleettls.Options{Force: true}); err != nil {
		return nil, fmt.Errorf("machine %s: agent certificate: %w", m.Name, err)
	}
	return []string{"--tls-cert", filepath.Join(tb.tlsDir, fleettls.CertFile(name)),
		"--tls-key", filepath.Join(tb.tlsDir, fleettls.KeyFile(name)),
		"--client-ca", filepath.Join(tb.tlsDir, fleettls.CAFile)}, nil
}

// Coordinator is the coordinator's namespace.
func (tb *Testbed) Coordinator() *Host { return tb.coord }

// GenerateProperties returns the properties of the i-th generated machine:
// memory, a zone out of two, and the types it runs.
func GenerateProperties(name string, i int) map[string]any {
	zones := []string{"zone-a", "zone-b"}
	return map[string]any{
		"hostname":       name,
		"mem":            json.Number(fmt.Sprint(1024 * (2 + i%3))),
		"zone":           zones[i%len(zones)],
		"supportedTypes": []any{"process"},
	}
}

// Add starts a machine: a namespace on the bridge with an agent that
// publishes props (hostname defaults to name), and registers them in etcd
// when the testbed runs it.
func (tb *Testbed) Add(name string, props map[string]any) (*Machine, error) {
	return tb.add(tb.net, name, props)
}

func (tb *Testbed) add(network *Network, name string, props map[string]any) (*Machine, error) {
	tb.mu.Lock()
	if _, dup := tb.machines[name]; dup {
		tb.mu.Unlock()
		return nil, fmt.Errorf("machine %s exists already", name)
	}
	if props == nil {
		props = GenerateProperties(name, tb.count)
	}
	tb.count++
	tb.mu.Unlock()
	if _, ok := props["hostname"]; !ok {
		props["hostname"] = name
	}
	host, err := network.AddHost(name)
	if err != nil {
		return nil, err
	}
	if _, ok := props["address"]; !ok {
		// Services reach each other by their target's address property.
		props["address"] = host.Addr.String()
	}
	dir := filepath.Join(tb.cfg.Dir, "machines", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("machine %s: %w", name, err)
	}
	m := &Machine{Name: name, Host: host, Properties: props, StateDir: filepath.Join(dir, "state"), LogFile: filepath.Join(dir, "agent.log"),
		servers: map[string]*dbServer{}}
	announced := map[string]any{"properties": props}
	if m.Containers = tb.containerProps(m); m.Containers != nil {
		announced["containers"] = m.Containers
		props["supportedTypes"] = withTypes(props["supportedTypes"], tb.cfg.Containers)
	}
	propsFile := filepath.Join(dir, "properties.json")
	data, err := json.MarshalIndent(announced, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", name, err)
	}
	if err := model.WriteFileAtomic(propsFile, data, 0o644); err != nil {
		return nil, err
	}
	tb.mu.Lock()
	tb.machines[name] = m
	tb.mu.Unlock()
	if err := tb.startMachine(m, propsFile); err != nil {
		return nil, err
	}
	return m, nil
}

// withTypes returns the supportedTypes list types, with every one of extra
// it lacks appended.
func withTypes(types any, extra []string) []any {
	list, _ := types.([]any)
	out := append([]any{}, list...)
	have := map[string]bool{}
	for _, t := range list {
		if s, ok := t.(string); ok {
			have[s] = true
		}
	}
	for _, e := range extra {
		if !have[e] {
			out = append(out, e)
		}
	}
	return out
}

// startMachine starts the containers of m (its database servers), then
// its agent, which announces them.
func (tb *Testbed) startMachine(m *Machine, propsFile string) error {
	if tb.hasContainer(ContainerMySQL) && !m.ServerRunning(ContainerMySQL) {
		if err := tb.startMySQL(m); err != nil {
			return err
		}
	}
	if tb.hasContainer(ContainerPostgreSQL) && !m.ServerRunning(ContainerPostgreSQL) {
		if err := tb.startPostgreSQL(m); err != nil {
			return err
		}
	}
	return tb.startAgent(m, propsFile)
}

func (tb *Testbed) startAgent(m *Machine, propsFile string) error {
	tlsArgs, err := tb.agentTLSArgs(m)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(m.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	args := []string{
		"--listen", fmt.Sprintf("%s:%d", m.Host.Addr, tb.cfg.AgentPort),
		"--state-dir", m.StateDir,
		"--token-file", tb.tokenFile,
		"--publish",
		"--interface", m.Host.Iface,
		"--properties", propsFile,
		"--drain-timeout", tb.cfg.DrainTimeout.String(),
	}
	args = append(args, tlsArgs...)
	args = append(args, tb.RegistryArgs()...)
	args = append(args, tb.cfg.ExtraAgentArgs...)
	cmd := m.Host.Command(filepath.Join(tb.cfg.BinDir, "dydisnix-agent"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(tb.cfg.AgentEnv) > 0 {
		cmd.Env = os.Environ()
		for _, e := range tb.cfg.AgentEnv {
			cmd.Env = append(cmd.Env, strings.ReplaceAll(e, "{machine}", m.Name))
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("machine %s: start agent: %w", m.Name, err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func() {
		m.err = cmd.Wait()
		logf.Close()
		close(m.done)
	}()
	return nil
}

// Machine returns a machine by name.
func (tb *Testbed) Machine(name string) (*Machine, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	m, ok := tb.machines[name]
	return m, ok
}

// Machines returns the machines in name order.
func (tb *Testbed) Machines() []*Machine {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]*Machine, 0, len(tb.machines))
	for _, m := range tb.machines {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (tb *Testbed) machine(name string) (*Machine, error) {
	m, ok := tb.Machine(name)
	if !ok {
		return nil, fmt.Errorf("no machine %s", name)
	}
	return m, nil
}

// Crash kills every process of a machine with SIGKILL, as a power cut would:
// no goodbye is sent.
func (tb *Testbed) Crash(name string) error {
	m, err := tb.machine(name)
	if err != nil {
		return err
	}
	if err := m.Host.KillAll(); err != nil {
		return err
	}
	if m.done != nil {
		<-m.done
	}
	m.waitServers()
	return nil
}

// KillAgent kills only the agent process of a machine with SIGKILL (and
// the "ip netns exec" wrapper it runs under); its services keep running,
// for the next agent to adopt (Start).
func (tb *Testbed) KillAgent(name string) error {
	m, err := tb.machine(name)
	if err != nil {
		return err
	}
	if !m.Running() {
		return fmt.Errorf("machine %s is not running", name)
	}
	if err := syscall.Kill(m.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill the agent of %s: %w", name, err)
	}
	<-m.done
	return nil
}

// Stop stops a machine gracefully: its agent gets SIGTERM, withdraws its
// announcement, drains, and exits. Stop waits for the exit (bounded by the
// drain timeout plus a margin, then the machine is killed).
func (tb *Testbed) Stop(name string) error {
	m, err := tb.machine(name)
	if err != nil {
		return err
	}
	if !m.Running() {
		return fmt.Errorf("machine %s is not running", name)
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(tb.cfg.DrainTimeout + 10*time.Second):
		m.Host.KillAll()
		<-m.done
		m.waitServers()
		return fmt.Errorf("machine %s did not stop within %s; killed", name, tb.cfg.DrainTimeout+10*time.Second)
	}
	// The machine shuts down: its database server stops cleanly, and
	// whatever the agent left behind is gone with the machine.
	err = m.stopServers()
	m.Host.KillAll()
	return err
}

// Start restarts a stopped or crashed machine with its old state directory:
// services of the old deployment may come back with it.
func (tb *Testbed) Start(name string) error {
	m, err := tb.machine(name)
	if err != nil {
		return err
	}
	if m.Running() {
		return fmt.Errorf("machine %s is running", name)
	}
	return tb.startMachine(m, filepath.Join(filepath.Dir(m.StateDir), "properties.json"))
}

// Partition cuts a machine's link to the network; Heal restores it.
func (tb *Testbed) Partition(name string) error { return tb.networkOf(name).SetLink(name, false) }

// Heal restores a partitioned machine's link.
func (tb *Testbed) Heal(name string) error { return tb.networkOf(name).SetLink(name, true) }

// networkOf is the network a host is on.
func (tb *Testbed) networkOf(name string) *Network {
	if tb.Far(name) {
		return tb.far
	}
	return tb.net
}

// OnClose registers f to run first when the testbed closes (in reverse
// order of registration), while every namespace still exists.
func (tb *Testbed) OnClose(f func()) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.onClose = append(tb.onClose, f)
}

// Close kills every machine and deletes every namespace of the testbed.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	fs := tb.onClose
	tb.onClose = nil
	tb.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	// Every machine is killed first, then waited for, together.
	killed := map[string][]unix.PollFd{}
	for _, m := range tb.Machines() {
		killed[m.Name], _ = m.Host.kill()
	}
	deadline := time.Now().Add(killWait)
	for name, fds := range killed {
		waitExited(name, fds, deadline)
	}
	for _, m := range tb.etcd {
		m.kill()
	}
	var err error
	if tb.far != nil {
		err = tb.far.Close()
	}
	if cerr := tb.net.Close(); cerr != nil {
		err = cerr
	}
	for _, m := range tb.Machines() {
		if m.done != nil {
			<-m.done
		}
		m.waitServers()
	}
	return err
}
