package testbed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/model"
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
	return c
}

// StartDaemon starts cmd, a testbed daemon serving dir (see ServeMachines),
// in a session of its own with its output in dir/testbed.log, and waits
// until it answers with at least n machines. It fails when the daemon
// exits first (with its log) or does not answer within timeout, or when a
// testbed already runs in dir.
func StartDaemon(dir string, cmd *exec.Cmd, n int, timeout time.Duration) ([]MachineInfo, error) {
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
	deadline := time.After(timeout)
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile)
			return nil, fmt.Errorf("the testbed exited (%v):\n%s", err, log)
		case <-deadline:
			return nil, fmt.Errorf("the testbed did not answer within %v; see %s", timeout, logFile)
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

// ServeMachines is the testbed daemon: it starts the named machines in dir
// and answers on the control socket until a "down" request or until stop
// is closed. Network names carry a prefix derived from dir, so two
// testbeds never share names and what a killed daemon of the same
// directory left behind is cleaned up first.
func ServeMachines(dir, binDir string, names []string, props map[string]map[string]any, stop <-chan struct{}) error {
	sum := sha256.Sum256([]byte(dir))
	prefix := "dtbd" + hex.EncodeToString(sum[:2])
	CleanupStale(prefix)
	tb, err := New(Config{Dir: dir, BinDir: binDir, Prefix: prefix})
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := tb.Add(name, props[name]); err != nil {
			tb.Close()
			return err
		}
	}
	return tb.Serve(stop)
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
