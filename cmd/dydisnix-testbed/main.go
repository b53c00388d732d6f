// Command dydisnix-testbed runs a simulated network of machines on this host:
// every machine is a network namespace on a private bridge running a real
// dydisnix-agent that announces itself over mDNS.
//
//	dydisnix-testbed up -n 4        start 4 machines (in the background)
//	dydisnix-testbed list           show them
//	dydisnix-testbed crash NAME     kill -9 every process of a machine
//	dydisnix-testbed stop NAME      graceful leave (the agent drains)
//	dydisnix-testbed start NAME     start a stopped machine again
//	dydisnix-testbed add [NAME]     add a machine
//	dydisnix-testbed partition NAME / heal NAME
//	dydisnix-testbed down           stop everything, delete the namespaces
//	dydisnix-testbed demo [--json]  the self-adaptive loop, end to end
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/testbed"
)

const usage = `usage: dydisnix-testbed COMMAND [flags]

commands:
  up -n N [--properties FILE]   start N simulated machines in the background
  list                          list the machines
  add [NAME] [--properties F]   add a machine
  crash NAME                    kill -9 every process of a machine
  stop NAME                     stop a machine gracefully (its agent drains)
  start NAME                    start a stopped or crashed machine again
  partition NAME | heal NAME    take a machine's link down / up
  down                          stop everything and delete the namespaces
  demo [--json]                 run the self-adaptive demo end to end

common flags:
  --dir DIR   the testbed's directory (default /run/dydisnix-testbed as root,
              else /tmp/dydisnix-testbed-UID)
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func defaultDir() string {
	if os.Geteuid() == 0 && os.Getenv(userNSEnv) == "" {
		return "/run/dydisnix-testbed"
	}
	return fmt.Sprintf("/tmp/dydisnix-testbed-%d", os.Getuid())
}

// userNSEnv marks a process re-executed inside a user namespace of its own.
const userNSEnv = "DYDISNIX_TESTBED_USERNS"

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("dydisnix-testbed "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", defaultDir(), "the testbed's directory")
	n := fs.IntP("machines", "n", 4, "number of machines (up)")
	propsFile := fs.String("properties", "", "JSON/YAML/Nix file with the machines' properties: {name: {properties}} for up, {properties} for add")
	jsonOut := fs.Bool("json", false, "print the demo report as one JSON document")
	binDir := fs.String("bin-dir", "", "directory with dydisnix-agent and the example services (default: beside this program)")
	keep := fs.Bool("keep", false, "demo: leave the testbed's files in --dir for inspection")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	name := fs.Arg(0)
	switch cmd {
	case "up":
		return up(*dir, *n, *propsFile, *binDir, stderr)
	case "serve":
		return serve(*dir, *n, *propsFile, *binDir, stderr)
	case "demo":
		return demo(*dir, *binDir, *jsonOut, *keep, stdout, stderr)
	case "list", "down":
		resp, err := testbed.Call(*dir, testbed.Request{Op: cmd})
		if err != nil {
			fmt.Fprintln(stderr, "dydisnix-testbed:", err)
			return 1
		}
		if cmd == "list" {
			printMachines(stdout, resp.Machines)
		}
		if cmd == "down" {
			if err := testbed.WaitDown(*dir, time.Minute); err != nil {
				fmt.Fprintln(stderr, "dydisnix-testbed:", err)
				return 1
			}
		}
		return 0
	case "add", "crash", "stop", "start", "partition", "heal":
		if name == "" && cmd != "add" {
			fmt.Fprintf(stderr, "dydisnix-testbed %s: a machine name is required\n", cmd)
			return 2
		}
		req := testbed.Request{Op: cmd, Name: name}
		if cmd == "add" && *propsFile != "" {
			v, err := model.LoadValue(*propsFile, model.KindPlain, nil)
			if err != nil {
				fmt.Fprintln(stderr, "dydisnix-testbed:", err)
				return 1
			}
			m, _ := v.(map[string]any)
			props, ok := m["properties"].(map[string]any)
			if !ok {
				fmt.Fprintf(stderr, "dydisnix-testbed: %s: expected {\"properties\": {...}}\n", *propsFile)
				return 1
			}
			req.Properties = props
		}
		resp, err := testbed.Call(*dir, req)
		if err != nil {
			fmt.Fprintln(stderr, "dydisnix-testbed:", err)
			return 1
		}
		printMachines(stdout, resp.Machines)
		return 0
	}
	fmt.Fprintf(stderr, "dydisnix-testbed: unknown command %q\n%s", cmd, usage)
	return 2
}

func printMachines(w io.Writer, ms []testbed.MachineInfo) {
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

// up starts `serve` in the background (in a user and network namespace of
// its own when not root) and waits until it answers.
func up(dir string, n int, propsFile, binDir string, stderr io.Writer) int {
	if _, err := testbed.Call(dir, testbed.Request{Op: "list"}); err == nil {
		fmt.Fprintf(stderr, "dydisnix-testbed: a testbed already runs in %s ('dydisnix-testbed down' first)\n", dir)
		return 1
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed:", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed:", err)
		return 1
	}
	if binDir == "" {
		binDir = filepath.Dir(exe)
	}
	args := []string{"serve", "--dir", dir, "-n", fmt.Sprint(n), "--bin-dir", binDir}
	if propsFile != "" {
		abs, _ := filepath.Abs(propsFile)
		args = append(args, "--properties", abs)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "testbed.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed:", err)
		return 1
	}
	defer logf.Close()
	c := selfCommand(exe, args)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed: start:", err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "testbed.log"))
			fmt.Fprintf(stderr, "dydisnix-testbed: the testbed exited (%v):\n%s", err, log)
			return 1
		case <-deadline:
			fmt.Fprintln(stderr, "dydisnix-testbed: the testbed did not answer within 60s; see", filepath.Join(dir, "testbed.log"))
			return 1
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err := testbed.Call(dir, testbed.Request{Op: "list"}); err == nil && len(resp.Machines) >= n {
			printMachines(os.Stdout, resp.Machines)
			return 0
		}
	}
}

// selfCommand runs this program again; when not root, inside a new user,
// network and mount namespace so the testbed needs no privileges and no
// packet can reach the host's interfaces.
func selfCommand(exe string, args []string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command(exe, args...)
	}
	script := `mount -t tmpfs tmpfs /run && mkdir -p /run/netns && exec "$0" "$@"`
	c := exec.Command("unshare", append([]string{"--user", "--map-root-user", "--net", "--mount", "--propagation", "private", "--fork", "--", "sh", "-c", script, exe}, args...)...)
	c.Env = append(os.Environ(), userNSEnv+"=1")
	return c
}

func loadMachines(propsFile string, n int) ([]string, map[string]map[string]any, error) {
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

func serve(dir string, n int, propsFile, binDir string, stderr io.Writer) int {
	names, props, err := loadMachines(propsFile, n)
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed:", err)
		return 1
	}
	// One prefix per testbed directory: two testbeds never share names, and
	// what a killed testbed of this directory left behind is cleaned up.
	sum := sha256.Sum256([]byte(dir))
	prefix := "dtbd" + hex.EncodeToString(sum[:2])
	testbed.CleanupStale(prefix)
	tb, err := testbed.New(testbed.Config{Dir: dir, BinDir: binDir, Prefix: prefix})
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed:", err)
		return 1
	}
	for _, name := range names {
		if _, err := tb.Add(name, props[name]); err != nil {
			fmt.Fprintln(stderr, "dydisnix-testbed:", err)
			tb.Close()
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := tb.Serve(ctx.Done()); err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed:", err)
		return 1
	}
	return 0
}

func demo(dir, binDir string, jsonOut, keep bool, stdout, stderr io.Writer) int {
	if os.Geteuid() != 0 && os.Getenv(userNSEnv) == "" {
		exe, _ := os.Executable()
		args := []string{"demo", "--dir", dir}
		if binDir != "" {
			args = append(args, "--bin-dir", binDir)
		} else {
			args = append(args, "--bin-dir", filepath.Dir(exe))
		}
		if jsonOut {
			args = append(args, "--json")
		}
		c := selfCommand(exe, args)
		c.Stdout, c.Stderr = stdout, stderr
		if err := c.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			fmt.Fprintln(stderr, "dydisnix-testbed:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	demoDir := filepath.Join(dir, "demo")
	os.RemoveAll(demoDir)
	progress := stdout
	if jsonOut {
		progress = stderr
	}
	report, err := testbed.RunDemo(ctx, testbed.DemoConfig{Dir: demoDir, BinDir: binDir, Progress: progress})
	if !keep {
		defer os.RemoveAll(demoDir)
	}
	if jsonOut && report != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	}
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-testbed demo: FAILED:", strings.TrimSpace(err.Error()))
		return 1
	}
	return 0
}
