// Command dydisnix-testbed runs a simulated network of machines on this host
// (up, list, add, crash, stop, start, partition, heal, down) and the
// self-adaptive demo on it (demo). See dydisnix-testbed --help and the
// README's section on the testbed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/testbed"
)

const doc = `Runs simulated machines on this host, each a network namespace on a private
bridge with a real dydisnix-agent announcing itself over mDNS (without root,
inside a user namespace of its own).

Commands:
  up [-n N] [--properties FILE]   start N machines in the background
  list                            list the machines
  add [NAME] [--properties FILE]  add a machine
  crash NAME                      kill -9 every process of a machine
  stop NAME                       stop a machine gracefully (its agent drains)
  start NAME                      start a stopped or crashed machine again
  partition NAME | heal NAME      take a machine's link down / up
  down                            stop everything and delete the namespaces
  demo [--json] [--keep]          run the self-adaptive demo end to end`

// named lists the commands that act on one machine.
var named = map[string]bool{"add": true, "crash": true, "stop": true, "start": true, "partition": true, "heal": true}

type options struct {
	dir, props, binDir string
	n                  int
	jsonOut, keep      bool
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-testbed", "COMMAND [NAME] [options]", doc)
	c.ExitStatus = "Exit status: 0 success, 1 error (the demo: a check failed), 2 usage error."
	c.MaxArgs = 2
	var o options
	fs := c.Flags
	fs.StringVar(&o.dir, "dir", "", "`DIR` the testbed's directory (default /run/dydisnix-testbed as root, else /tmp/dydisnix-testbed-UID)")
	fs.IntVarP(&o.n, "machines", "n", 4, "`N` number of machines (up)")
	fs.StringVar(&o.props, "properties", "", "`FILE` the machines' properties (JSON, YAML or Nix): {name: {properties}} for up, {properties} for add")
	fs.StringVar(&o.binDir, "bin-dir", "", "`DIR` directory of dydisnix-agent and the example services (default: this program's)")
	fs.BoolVar(&o.jsonOut, "json", false, "demo: print the report as one JSON document")
	fs.BoolVar(&o.keep, "keep", false, "demo: leave the demo's files in --dir for inspection")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if o.dir == "" {
		o.dir = testbed.DefaultDir()
	}
	cmd, name := fs.Arg(0), fs.Arg(1)
	switch {
	case cmd == "":
		return c.Exit(cli.Usagef("a command is required: up, list, add, crash, stop, start, partition, heal, down or demo"), stderr)
	case named[cmd] && name == "" && cmd != "add":
		return c.Exit(cli.Usagef("%s: a machine name is required", cmd), stderr)
	case !named[cmd] && name != "":
		return c.Exit(cli.Usagef("unexpected argument %q", name), stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch cmd {
	case "up":
		err = up(&o, stdout)
	case "serve": // the daemon up starts
		var names []string
		var props map[string]map[string]any
		if names, props, err = testbed.LoadMachines(o.props, o.n); err == nil {
			err = testbed.ServeMachines(o.dir, o.binDir, names, props, ctx.Done())
		}
	case "demo":
		return demo(ctx, &o, stdout, stderr)
	default:
		if !named[cmd] && cmd != "list" && cmd != "down" {
			return c.Exit(cli.Usagef("unknown command %q", cmd), stderr)
		}
		err = control(cmd, name, &o, stdout)
	}
	return c.Exit(err, stderr)
}

// up starts the daemon (this program's hidden command serve) in the
// background and prints the machines once they run.
func up(o *options, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if o.binDir == "" {
		o.binDir = filepath.Dir(exe)
	}
	args := []string{"serve", "--dir", o.dir, "-n", strconv.Itoa(o.n), "--bin-dir", o.binDir}
	if o.props != "" {
		abs, err := filepath.Abs(o.props)
		if err != nil {
			return err
		}
		args = append(args, "--properties", abs)
	}
	ms, err := testbed.StartDaemon(o.dir, testbed.SelfCommand(exe, args), o.n, time.Minute)
	if err != nil {
		return err
	}
	testbed.PrintMachines(stdout, ms)
	return nil
}

// control sends a command to the daemon and prints the machines it reports.
func control(cmd, name string, o *options, stdout io.Writer) error {
	req := testbed.Request{Op: cmd, Name: name}
	if cmd == "add" && o.props != "" {
		var err error
		if req.Properties, err = testbed.LoadMachineProperties(o.props); err != nil {
			return err
		}
	}
	resp, err := testbed.Call(o.dir, req)
	if err != nil {
		return err
	}
	if cmd == "down" {
		return testbed.WaitDown(o.dir, time.Minute)
	}
	testbed.PrintMachines(stdout, resp.Machines)
	return nil
}

// demo runs testbed.RunDemo, re-executed in a user namespace when needed.
func demo(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	if testbed.NeedsUserNS() {
		exe, err := os.Executable()
		if err != nil {
			return cli.Exit("dydisnix-testbed", err, stderr)
		}
		if o.binDir == "" {
			o.binDir = filepath.Dir(exe)
		}
		args := []string{"demo", "--dir", o.dir, "--bin-dir", o.binDir, "--json=" + strconv.FormatBool(o.jsonOut), "--keep=" + strconv.FormatBool(o.keep)}
		c := testbed.SelfCommand(exe, args)
		c.Stdout, c.Stderr = stdout, stderr
		var ee *exec.ExitError
		if err := c.Run(); errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			return cli.Exit("dydisnix-testbed", err, stderr)
		}
		return 0
	}
	demoDir := filepath.Join(o.dir, "demo")
	os.RemoveAll(demoDir)
	if !o.keep {
		defer os.RemoveAll(demoDir)
	}
	progress := stdout
	if o.jsonOut {
		progress = stderr
	}
	report, err := testbed.RunDemo(ctx, testbed.DemoConfig{Dir: demoDir, BinDir: o.binDir, Progress: progress})
	if o.jsonOut && report != nil {
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
