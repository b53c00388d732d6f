// Command dydisnix-testbed runs a simulated network of machines on this host
// (up, list, add, crash, stop, start, partition, heal, shell, exec, down),
// optionally with the self-adaptive loop on it (up --coordinator), and the
// self-adaptive demo (demo). See dydisnix-testbed --help and docs/testbed.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
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
inside a user namespace of its own). See docs/testbed.md.

Commands:
  up [-n N] [--etcd N [--far N]] [--containers L] [--coordinator [--standby]]
                                  start N machines in the background (with
                                  --containers, each runs MariaDB/PostgreSQL;
                                  the loop's page: http://127.0.0.1:9470/)
  list                            list the machines (and the status page)
  add [NAME] [--properties FILE]  add a machine
  crash NAME                      kill -9 every process of a machine
  stop NAME                       stop a machine gracefully (its agent drains)
  start NAME                      start a stopped or crashed machine again
  partition NAME | heal NAME      take a machine's link down / up
  shell NAME                      a shell inside a machine ("coordinator" too)
  exec NAME -- CMD [ARG...]       run a command inside a machine
  down                            stop everything and delete the namespaces
  demo [--json] [--keep] [--keep-running]  the demo: a web system on MariaDB through
                                  a crash, a graceful stop and a new machine
  bench-scale [-n N] [--idle D] [--json]    the scale scenario (docs/benchmarks.md)`

// named lists the commands that act on one machine.
var named = map[string]bool{"add": true, "crash": true, "stop": true, "start": true, "partition": true, "heal": true, "shell": true, "exec": true}

type options struct {
	up                   testbed.UpConfig
	jsonOut, keep, runOn bool
	statusFD             int
	idle                 time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-testbed", "COMMAND [NAME] [options]", doc)
	c.ExitStatus = "Exit status: 0 success, 1 error (the demo: a check failed), 2 usage error."
	c.MaxArgs = math.MaxInt
	var o options
	u := &o.up
	fs := c.Flags
	u.AddFlags(fs)
	fs.BoolVar(&o.jsonOut, "json", false, "demo, bench-scale: print the report as one JSON document")
	fs.DurationVar(&o.idle, "idle", 2*time.Minute, "`D` bench-scale: the idle window")
	fs.BoolVar(&o.keep, "keep", false, "demo: leave the demo's files in --dir for inspection")
	fs.BoolVar(&o.runOn, "keep-running", false, "demo: keep the machines and the loop (and its page) running until Ctrl-C")
	fs.IntVar(&o.statusFD, "status-fd", 0, "inherited listener of the status page (internal)")
	fs.MarkHidden("status-fd")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if u.Dir == "" {
		u.Dir = testbed.DefaultDir()
	}
	if u.BinDir == "" {
		if exe, err := os.Executable(); err == nil {
			u.BinDir = filepath.Dir(exe)
		}
	}
	cmd, name, rest := fs.Arg(0), fs.Arg(1), fs.Args()[min(2, fs.NArg()):]
	switch {
	case cmd == "":
		return c.Exit(cli.Usagef("a command is required: up, list, add, crash, stop, start, partition, heal, shell, exec, down, demo or bench-scale"), stderr)
	case named[cmd] && name == "" && cmd != "add":
		return c.Exit(cli.Usagef("%s: a machine name is required", cmd), stderr)
	case cmd == "exec" && len(rest) == 0:
		return c.Exit(cli.Usagef("exec: a command is required: exec NAME -- CMD [ARG...]"), stderr)
	case !named[cmd] && name != "":
		return c.Exit(cli.Usagef("unexpected argument %q", name), stderr)
	case cmd == "up" && !u.Coordinator && (u.ServicesFile+u.PolicyFile+u.AugmentFile != "" || u.Standby):
		return c.Exit(cli.Usagef("up: -s, -q, -a and --standby go with --coordinator"), stderr)
	case cmd == "up" && u.Standby && u.Etcd == 0:
		return c.Exit(cli.Usagef("up: --standby needs --etcd N (the coordinators elect their leader in etcd)"), stderr)
	case cmd != "exec" && len(rest) > 0:
		return c.Exit(cli.Usagef("unexpected argument %q", rest[0]), stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch cmd {
	case "up":
		err = up(ctx, u, stdout)
	case "serve": // the daemon up starts
		err = testbed.Serve(ctx, *u, o.statusFD)
	case "demo":
		return demo(ctx, &o, stdout, stderr)
	case "bench-scale":
		err = benchScale(ctx, &o, stdout)
	case "shell", "exec":
		err = testbed.Enter(u.Dir, name, rest)
	default:
		if !named[cmd] && cmd != "list" && cmd != "down" {
			return c.Exit(cli.Usagef("unknown command %q", cmd), stderr)
		}
		err = control(cmd, name, u, stdout)
	}
	return c.Exit(err, stderr)
}

// control sends a command to the daemon and prints the machines it reports.
func control(cmd, name string, u *testbed.UpConfig, stdout io.Writer) error {
	req := testbed.Request{Op: cmd, Name: name}
	if cmd == "add" && u.PropertiesFile != "" {
		var err error
		if req.Properties, err = testbed.LoadMachineProperties(u.PropertiesFile); err != nil {
			return err
		}
	}
	resp, err := testbed.Call(u.Dir, req)
	if err != nil {
		return err
	}
	if cmd == "down" {
		return testbed.WaitDown(u.Dir, testbed.DownTimeout(len(resp.Machines)))
	}
	testbed.PrintResponse(stdout, resp)
	return nil
}

// demo runs testbed.RunDemo, re-executed in a user namespace when needed.
func demo(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	u := &o.up
	fail := func(err error) int { return cli.Exit("dydisnix-testbed", err, stderr) }
	if testbed.NeedsUserNS() {
		exe, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		args := []string{"demo", "--dir", u.Dir, "--bin-dir", u.BinDir, "--json=" + strconv.FormatBool(o.jsonOut),
			"--keep=" + strconv.FormatBool(o.keep), "--keep-running=" + strconv.FormatBool(o.runOn)}
		code, err := testbed.ReexecDemo(exe, args, u.StatusPort, stdout, stderr)
		if err != nil {
			return fail(err)
		}
		return code
	}
	cfg := testbed.DemoConfig{Dir: filepath.Join(u.Dir, "demo"), BinDir: u.BinDir, Progress: stdout, KeepRunning: o.runOn}
	var err error
	if o.statusFD > 0 {
		cfg.Status, err = testbed.InheritedListener(o.statusFD)
	} else {
		cfg.Status, err = testbed.ListenStatus(u.StatusPort, true)
	}
	if err != nil {
		return fail(err)
	}
	os.RemoveAll(cfg.Dir)
	if !o.keep {
		defer os.RemoveAll(cfg.Dir)
	}
	if o.jsonOut {
		cfg.Progress = stderr
	}
	report, err := testbed.RunDemo(ctx, cfg)
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
