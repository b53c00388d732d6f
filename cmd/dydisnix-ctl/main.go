// Command dydisnix-ctl is the operator's command line of a running
// dydisnix-self-adapt loop: its status, pause and resume, cordon, drain and
// uncordon of a target, a redeploy, and the output of a service.
//
//	dydisnix-ctl status
//	dydisnix-ctl drain machine2
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/internal/ctl"
)

const doc = `Talks to the dydisnix-self-adapt loop whose state directory is --state-dir,
over its control socket (control.sock there, mode 0600: only the loop's user
and root may use it). Commands:

  status             the loop's status (-o json: the /status document)
  pause, resume      stop deploying (the loop keeps observing), start again
  redeploy           run a deploy pass now, even if nothing changed
  cordon TARGET      place no new service on TARGET (the ones there stay)
  drain TARGET       cordon TARGET and move its services away
  uncordon TARGET    undo cordon and drain
  logs SERVICE       the last lines of SERVICE's output, from the agent of
                     each target running it (needs --agent-token-file)

A command returns once the loop has taken it: a redeploy or a drain is then
scheduled; watch it with status.`

type options struct {
	state  cli.StateDir
	agent  cli.Agent
	socket string
	output string
	logs   ctl.LogsOptions
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-ctl", "[options] status | pause | resume | redeploy\n"+
		"[options] cordon | drain | uncordon TARGET\n[options] logs SERVICE", doc)
	c.ExitStatus = "Exit status: 0 success, 1 the loop refused or could not be reached, 2 usage error."
	c.MaxArgs = 2
	o := &options{}
	f := c.Flags
	o.state.AddFlags(f)
	f.StringVar(&o.socket, "socket", "", "`PATH` of the control socket (default STATE-DIR/"+adapt.ControlSocketName+")")
	cli.ChoiceVarP(f, &o.output, "output", "o", "text", "`FORMAT` of status: text or json", "text", "json")
	o.agent.AddFlags(f)
	f.StringVar(&o.logs.TargetProperty, "target-property", "", "target `PROPERTY` holding the agent URL (default agentURL)")
	f.StringVar(&o.logs.Target, "target", "", "logs: only from `TARGET`")
	f.IntVar(&o.logs.Tail, "tail", 100, "logs: the last `N` lines (at most 10000)")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(o.do(ctx, f.Args(), stdout), stderr)
}

func (o *options) do(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("no command given (status, pause, resume, redeploy, cordon, drain, uncordon or logs)")
	}
	cmd, arg := args[0], ""
	if len(args) > 1 {
		arg = args[1]
	}
	want := map[string]bool{"status": false, "pause": false, "resume": false, "redeploy": false,
		"cordon": true, "drain": true, "uncordon": true, "logs": true}
	needArg, ok := want[cmd]
	switch {
	case !ok:
		return cli.Usagef("unknown command %q", cmd)
	case needArg && arg == "":
		return cli.Usagef("%s needs an argument", cmd)
	case !needArg && arg != "":
		return cli.Usagef("unexpected argument %q", arg)
	case o.logs.Tail < 1 || o.logs.Tail > 10000:
		return cli.Usagef("--tail: expected a number of lines from 1 to 10000")
	}
	if o.socket == "" {
		o.socket = filepath.Join(o.state.Path(), adapt.ControlSocketName)
	}
	client := ctl.New(o.socket)
	switch cmd {
	case "status":
		st, err := client.Status(ctx)
		if err != nil {
			return err
		}
		if o.output == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		return ctl.PrintStatus(stdout, st, time.Now())
	case "logs":
		tok, err := o.agent.Token()
		if err != nil {
			return err
		}
		if o.logs.Agents, err = o.agent.TLS(); err != nil {
			return err
		}
		o.logs.Token = tok
		return client.Logs(ctx, arg, o.logs, stdout)
	}
	if err := client.Command(ctx, adapt.ControlOp(cmd), arg); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s: accepted\n", strings.TrimSpace(cmd+" "+arg))
	return err
}
