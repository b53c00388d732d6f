package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/testbed/services"
)

// What dydisnix-testbed runs in the background: the testbed daemon, which
// builds the machines and answers on the control socket, and the helpers
// around it.

// UserNSEnv is set in a process that SelfCommand re-executed inside a user
// namespace of its own.
const UserNSEnv = "DYDISNIX_TESTBED_USERNS"

// NeedsUserNS reports whether this process must re-execute itself in a
// user namespace (SelfCommand) to create network namespaces: it is not
// root and not inside such a namespace already.
func NeedsUserNS() bool { return os.Geteuid() != 0 && os.Getenv(UserNSEnv) == "" }

// DefaultDir is the testbed's directory: /run/dydisnix-testbed as root,
// else /tmp/dydisnix-testbed-UID.
func DefaultDir() string {
	if os.Geteuid() == 0 && os.Getenv(UserNSEnv) == "" {
		return "/run/dydisnix-testbed"
	}
	return fmt.Sprintf("/tmp/dydisnix-testbed-%d", os.Getuid())
}

// SelfCommand runs exe with args: as root directly, else inside a new
// user, network and mount namespace, so that the testbed needs no
// privileges and no packet can reach the host's interfaces.
func SelfCommand(exe string, args []string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command(exe, args...)
	}
	script := `mount -t tmpfs tmpfs /run && mkdir -p /run/netns && exec "$0" "$@"`
	c := exec.Command("unshare", append([]string{"--user", "--map-root-user", "--net", "--mount", "--propagation", "private", "--fork", "--", "sh", "-c", script, exe}, args...)...)
	c.Env = append(os.Environ(), UserNSEnv+"=1")
	if os.Getenv("NIX_REMOTE") == "" {
		// Inside the namespace this user is root, so Nix would open the
		// store of /nix itself, which belongs to the real root; the loop
		// only evaluates models, which needs no store.
		c.Env = append(c.Env, "NIX_REMOTE=dummy://")
	}
	return c
}

// UpConfig configures Up.
type UpConfig struct {
	// Dir is the testbed's directory; BinDir holds the programs it runs.
	Dir, BinDir string
	// Machines is how many machines to start, unless PropertiesFile (an
	// infrastructure model) names them.
	Machines       int
	PropertiesFile string
	// KeepState: see DaemonConfig.
	KeepState bool
	// Containers: see Config.Containers.
	Containers []string
	// Coordinator also runs the loop on ServicesFile, PolicyFile and
	// AugmentFile (see CoordinatorConfig), its page forwarded to
	// 127.0.0.1:StatusPort on the host (0: any free port).
	Coordinator                           bool
	ServicesFile, PolicyFile, AugmentFile string
	StatusPort                            int
	// Standby also runs a second coordinator (see CoordinatorConfig).
	Standby bool
	// Etcd and Far: see DaemonConfig.
	Etcd, Far int
}

// Up starts the testbed daemon in the background: this program
// re-executed with its hidden command serve, inside a user namespace of
// its own when needed (SelfCommand). The host's end of the status page is
// opened here, before any namespace is entered, and inherited by the
// daemon as fd 3. Up waits until every machine runs (StartDaemon) and the
// page answers, and returns the daemon's "list" answer.
func Up(ctx context.Context, cfg UpConfig) (*Response, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	names, _, err := LoadMachines(cfg.PropertiesFile, cfg.Machines)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--dir", cfg.Dir, "-n", strconv.Itoa(cfg.Machines), "--bin-dir", cfg.BinDir,
		"--keep-state=" + strconv.FormatBool(cfg.KeepState), "--etcd", strconv.Itoa(cfg.Etcd), "--far", strconv.Itoa(cfg.Far)}
	for _, f := range []struct{ flag, file string }{
		{"--properties", cfg.PropertiesFile}, {"--services", cfg.ServicesFile},
		{"--qos", cfg.PolicyFile}, {"--augment", cfg.AugmentFile},
	} {
		if f.file == "" {
			continue
		}
		abs, err := filepath.Abs(f.file)
		if err != nil {
			return nil, err
		}
		args = append(args, f.flag, abs)
	}
	if len(cfg.Containers) > 0 {
		args = append(args, "--containers", strings.Join(cfg.Containers, ","))
	}
	if cfg.Coordinator {
		args = append(args, "--coordinator", "--status-fd", "3")
	}
	if cfg.Standby {
		args = append(args, "--standby")
	}
	cmd := SelfCommand(exe, args)
	if cfg.Coordinator {
		l, err := ListenStatus(cfg.StatusPort, false)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		f, err := passListener(cmd, l)
		if err != nil {
			return nil, err
		}
		defer f.Close()
	}
	if _, err := StartDaemon(ctx, cfg.Dir, cmd, len(names)+cfg.Far); err != nil {
		return nil, err
	}
	return Call(cfg.Dir, Request{Op: "list"})
}

// Serve is the daemon Up starts (its hidden command serve): ServeMachines
// for cfg, the status page's listener inherited as statusFD (0: none).
func Serve(ctx context.Context, cfg UpConfig, statusFD int) error {
	names, props, err := LoadMachines(cfg.PropertiesFile, cfg.Machines)
	if err != nil {
		return err
	}
	dc := DaemonConfig{Dir: cfg.Dir, BinDir: cfg.BinDir, Names: names, Props: props, KeepState: cfg.KeepState, Etcd: cfg.Etcd, Far: cfg.Far,
		Containers: cfg.Containers}
	if cfg.Coordinator {
		dc.Coordinator = &CoordinatorConfig{ServicesFile: cfg.ServicesFile, PolicyFile: cfg.PolicyFile, AugmentFile: cfg.AugmentFile,
			Standby: cfg.Standby}
		if statusFD > 0 {
			if dc.Coordinator.Status, err = InheritedListener(statusFD); err != nil {
				return err
			}
		}
	}
	return ServeMachines(dc, ctx.Done())
}

// ReexecDemo runs exe (this program) with args (its demo command) in a
// user namespace of its own (SelfCommand), the host's end of the status
// page opened first on port (any free port if it is taken) and inherited
// as --status-fd 3. It returns the demo's exit status.
func ReexecDemo(exe string, args []string, port int, stdout, stderr io.Writer) (int, error) {
	l, err := ListenStatus(port, true)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	cmd := SelfCommand(exe, append(args, "--status-fd", "3"))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	f, err := passListener(cmd, l)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var ee *exec.ExitError
	if err := cmd.Run(); errors.As(err, &ee) {
		return ee.ExitCode(), nil
	} else if err != nil {
		return 0, err
	}
	return 0, nil
}

// StartDaemon starts cmd, a testbed daemon serving dir (see ServeMachines),
// in a session of its own with its output in dir/testbed.log, and waits
// until it answers with at least n machines: as long as that takes, since
// the daemon exits when it fails. It fails when the daemon exits first
// (with its log), or when a testbed already runs in dir; when ctx ends
// first, it kills the daemon.
func StartDaemon(ctx context.Context, dir string, cmd *exec.Cmd, n int) ([]MachineInfo, error) {
	if _, err := Call(dir, Request{Op: "list"}); err == nil {
		return nil, fmt.Errorf("a testbed already runs in %s ('dydisnix-testbed down' first)", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "testbed.log")
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("the testbed exited (%v):\n%s", err, log)
		case <-ctx.Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return nil, fmt.Errorf("interrupted while the testbed started (%w); what it left is cleaned up by the next 'up' in %s", ctx.Err(), dir)
		case <-poll.C:
		}
		if resp, err := Call(dir, Request{Op: "list"}); err == nil && len(resp.Machines) >= n {
			return resp.Machines, nil
		}
	}
}

// LoadMachines returns the names and properties of the machines to start:
// machine1 ... machineN, or the targets of an infrastructure model file.
func LoadMachines(propsFile string, n int) ([]string, map[string]map[string]any, error) {
	names := make([]string, 0, n)
	props := map[string]map[string]any{}
	if propsFile == "" {
		for i := 1; i <= n; i++ {
			names = append(names, fmt.Sprintf("machine%d", i))
		}
		return names, props, nil
	}
	v, err := model.LoadValue(propsFile, model.KindPlain, nil)
	if err != nil {
		return nil, nil, err
	}
	infra, err := model.InfrastructureFromValue(v, propsFile)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range infra.Names() {
		names = append(names, name)
		props[name] = infra[name].Properties
	}
	return names, props, nil
}

// LoadMachineProperties reads the properties of one machine to add from a
// file holding {"properties": {...}}.
func LoadMachineProperties(file string) (map[string]any, error) {
	v, err := model.LoadValue(file, model.KindPlain, nil)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	props, ok := m["properties"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: expected {\"properties\": {...}}", file)
	}
	return props, nil
}

// DaemonConfig configures the testbed daemon (ServeMachines).
type DaemonConfig struct {
	// Dir is the testbed's directory; BinDir holds dydisnix-agent,
	// dydisnix-self-adapt and the example services.
	Dir, BinDir string
	// Names and Props are the machines to start (see LoadMachines).
	Names []string
	Props map[string]map[string]any
	// KeepState keeps what an earlier testbed left in Dir (the machines'
	// state directories, the coordinator's state): its services then come
	// back. By default that is deleted first, so every up starts fresh.
	KeepState bool
	// Containers: see Config.Containers.
	Containers []string
	// Coordinator, when set, also runs the loop in the coordinator's
	// namespace.
	Coordinator *CoordinatorConfig
	// Etcd is the number of etcd members (Config.Etcd); Far the number
	// of machines (remote1, …) on the far subnet behind the router
	// (Config.FarSubnet, DefaultFarSubnet).
	Etcd, Far int
}

// CoordinatorConfig is the loop the testbed daemon runs.
type CoordinatorConfig struct {
	// ServicesFile, PolicyFile and AugmentFile are the loop's models; ""
	// means the built-in example system and DemoPolicy (no augmentation,
	// or with Containers Testbed.ContainersAugment, which adds the
	// servers' credentials).
	ServicesFile, PolicyFile, AugmentFile string
	// Status, when set, is a listener in the host's network namespace
	// whose connections are forwarded to the loop's status page.
	Status net.Listener
	// Standby also runs a second loop on the same models in a namespace
	// of its own (coordinator2, its state in Dir/coordinator2); with the
	// testbed's etcd the two elect a leader and only it deploys
	// (docs/registry.md). Its page is not forwarded to the host.
	Standby bool
}

// ServeMachines is the testbed daemon: it starts the machines (and the
// loop) in cfg.Dir and answers on the control socket until a "down"
// request or until stop is closed. Network names carry a prefix derived
// from the directory, so two testbeds never share names and what a killed
// daemon of the same directory left behind is cleaned up first.
func ServeMachines(cfg DaemonConfig, stop <-chan struct{}) error {
	sum := sha256.Sum256([]byte(cfg.Dir))
	prefix := "dtbd" + hex.EncodeToString(sum[:2])
	CleanupStale(prefix)
	if !cfg.KeepState {
		for _, sub := range []string{"machines", "coordinator", "coordinator2"} {
			if err := os.RemoveAll(filepath.Join(cfg.Dir, sub)); err != nil {
				return fmt.Errorf("delete the earlier testbed's state: %w", err)
			}
		}
	}
	if cfg.Far > 0 && cfg.Etcd == 0 {
		return fmt.Errorf("machines on the far subnet are found through etcd only: give --etcd N with --far")
	}
	// The MariaDB servers provide the web system's accounts, so that
	// examples/websystem runs on them.
	tcfg := Config{Dir: cfg.Dir, BinDir: cfg.BinDir, Prefix: prefix, Etcd: cfg.Etcd, Containers: cfg.Containers,
		MySQLAccounts: services.WebSystemDatabases}
	if cfg.Far > 0 {
		tcfg.FarSubnet = DefaultFarSubnet
	}
	tb, err := New(tcfg)
	if err != nil {
		return err
	}
	for _, name := range cfg.Names {
		if _, err := tb.Add(name, cfg.Props[name]); err != nil {
			tb.Close()
			return err
		}
	}
	for i := 1; i <= cfg.Far; i++ {
		if _, err := tb.AddFar(fmt.Sprintf("remote%d", i), nil); err != nil {
			tb.Close()
			return err
		}
	}
	if cfg.Coordinator != nil {
		if err := tb.startCoordinator(*cfg.Coordinator, stop); err != nil {
			tb.Close()
			return err
		}
	}
	return tb.Serve(stop)
}

// startCoordinator starts the loop and waits until its status page
// answers, then forwards cc.Status to it.
func (tb *Testbed) startCoordinator(cc CoordinatorConfig, stop <-chan struct{}) error {
	if cc.AugmentFile == "" && len(tb.cfg.Containers) > 0 {
		cc.AugmentFile = filepath.Join(tb.cfg.Dir, "augment-containers.yaml")
		if err := os.WriteFile(cc.AugmentFile, []byte(tb.ContainersAugment()), 0o644); err != nil {
			return fmt.Errorf("coordinator: %w", err)
		}
	}
	h, err := AttachHarness(tb, HarnessConfig{
		Dir:          filepath.Join(tb.cfg.Dir, "coordinator"),
		ServicesFile: cc.ServicesFile, PolicyFile: cc.PolicyFile, AugmentFile: cc.AugmentFile,
	})
	if err != nil {
		return err
	}
	if err := h.StartLoop(); err != nil {
		return err
	}
	tb.OnClose(h.StopLoop)
	tb.loop = h
	if cc.Standby {
		if err := tb.startStandby(cc); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := h.WaitStatus(ctx); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if l := cc.Status; l != nil {
		go tb.coord.Forward(l, h.StatusAddr())
		tb.OnClose(func() { l.Close() })
		tb.statusURL = "http://" + l.Addr().String() + "/"
	}
	return nil
}

// PrintResponse writes the machines as a table and the status page, if any.
func PrintResponse(w io.Writer, resp *Response) {
	PrintMachines(w, resp.Machines)
	if resp.StatusURL != "" {
		fmt.Fprintf(w, "\nThe loop's status page: %s\n", resp.StatusURL)
	}
	if resp.Registry != "" {
		fmt.Fprintf(w, "The etcd registry: --registry %s\n", resp.Registry)
	}
	if resp.LoopError != "" {
		fmt.Fprintf(w, "\n%s\n", resp.LoopError)
	}
}

// PrintMachines writes the machines as a table.
func PrintMachines(w io.Writer, ms []MachineInfo) {
	fmt.Fprintf(w, "%-12s %-14s %-8s %s\n", "MACHINE", "ADDRESS", "STATE", "PROPERTIES")
	for _, m := range ms {
		state := "running"
		if !m.Running {
			state = "stopped"
		}
		if m.Partition {
			state = "cut-off"
		}
		props, _ := json.Marshal(m.Properties)
		fmt.Fprintf(w, "%-12s %-14s %-8s %s\n", m.Name, m.Address, state, props)
	}
}
