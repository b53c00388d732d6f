// Command dydisnix-env deploys once: it reads (or discovers) the
// infrastructure, augments it, computes the distribution with a QoS policy,
// assigns ports and IDs, and carries the deployment from the last manifest
// generation to the new one — one rollout.Pass.
//
//	dydisnix-env -s services.nix -q qos.yaml [-i infrastructure.nix] [--dry-run]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	dcli "github.com/dydisnix/dydisnix/discovery/cli"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

const doc = `Deploys once: discovers (or reads) the infrastructure, augments it, computes
the distribution with the QoS policy (the previous deployment's distribution
is passed to it), assigns ports and IDs, builds the manifest and carries the
deployment from the last manifest generation to the new one: lock,
deactivate obsolete services (dependents first), move state, activate new
services (dependencies first), unlock. A failure rolls everything back.
Without -i the infrastructure comes from --geninfra (else $DYDISNIX_GENINFRA),
else from the etcd --registry and/or mDNS browsed on --mdns-interface.`

type options struct {
	pass                                 rollout.Config
	agent                                cli.Agent
	state                                cli.StateDir
	log                                  cli.Log
	infra                                discovery.Choice
	registry                             dcli.Registry
	format, out                          string
	dryRun, undeploy, rollback, listGens bool
	switchTo                             int
	discoveryTimeout                     time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-env", "-s SERVICES -q POLICY [-i INFRASTRUCTURE] [options]\n"+
		"--rollback | --switch-to-generation N | --undeploy | --list-generations [options]", doc)
	c.Footer = "DISNIX_CLIENT_INTERFACE and DISNIX_TARGET_PROPERTY reach the Disnix tools (--deployer disnix)."
	o := &options{}
	f := c.Flags
	o.pass.AddFlags(f, true)
	f.StringVarP(&o.infra.File, "infrastructure", "i", "", "`FILE` infrastructure model")
	f.StringVar(&o.infra.Command, "geninfra", os.Getenv(discovery.GeninfraEnv), "`CMD` infrastructure generator (default $"+discovery.GeninfraEnv+")")
	f.StringArrayVar(&o.infra.Interfaces, "mdns-interface", nil, "browse mDNS on `IF` (repeatable)")
	f.StringVar(&o.infra.Browser.SignKey, "verify-key", "", "ignore mDNS announcements not signed with the key in `FILE` (shared secret, or ed25519 PEM key)")
	f.DurationVar(&o.discoveryTimeout, "discovery-timeout", 3*time.Second, "how long to browse mDNS (at most, for --registry)")
	o.registry.AddFlags(f)
	o.agent.AddFlags(f)
	o.state.AddFlags(f)
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan (numbered steps) and change nothing")
	cli.ChoiceVarP(f, &o.format, "format", "", "text", "`FORMAT` of the --dry-run plan: text or json", "text", "json")
	f.StringVarP(&o.out, "output", "o", "", "write the plan (--dry-run) or the new manifest to `FILE`")
	f.BoolVar(&o.undeploy, "undeploy", false, "deactivate everything deployed (no -s/-q)")
	f.BoolVar(&o.rollback, "rollback", false, "deploy the previous manifest generation again")
	f.IntVar(&o.switchTo, "switch-to-generation", 0, "deploy manifest generation `N`")
	f.BoolVar(&o.listGens, "list-generations", false, "list the manifest generations and exit")
	o.log.AddFlags(f)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := o.check(); err != nil {
		return c.Exit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(deploy(ctx, o, stdout, stderr), stderr)
}

func (o *options) check() error {
	n := len(slices.DeleteFunc([]bool{o.undeploy, o.rollback, o.switchTo != 0, o.listGens}, func(b bool) bool { return !b }))
	o.pass.ChooseDeployer(o.agent.Configured() || n > 0) // generations are the agents' store
	m := o.pass.Models
	switch {
	case n > 1:
		return cli.Usagef("--undeploy, --rollback, --switch-to-generation and --list-generations exclude each other")
	case n > 0 && o.pass.Deployer != "agent":
		return cli.Usagef("--undeploy, --rollback, --switch-to-generation and --list-generations need the agent deployer (use disnix-env for Disnix)")
	case n == 0 && m.Services == "":
		return cli.Usagef("-s/--services is required")
	case n == 0 && m.QoS == "":
		return cli.Usagef("-q/--qos is required")
	}
	if err := o.pass.Check(); err != nil {
		return err
	}
	switch {
	case strings.EqualFold(filepath.Ext(o.out), ".nix"):
		return cli.Usagef("-o %s: the plan and the manifest are written as JSON or text, not Nix", o.out)
	case o.pass.Deployer == "agent" && !o.dryRun && !o.listGens:
		return o.agent.Require()
	}
	return nil
}

func deploy(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if err := o.registry.Into(&o.infra); err != nil {
		return err
	}
	log := o.log.Logger(stderr)
	o.pass.StateDir, o.pass.Logger, o.pass.DisnixOutput = o.state.Path(), log, stderr
	if err := o.pass.UseAgents(&o.agent); err != nil {
		return err
	}
	if o.pass.Agents != nil {
		// Discovery's probes and /v1/target fetches present the
		// coordinator's certificate to the fleet's agents; a probe goes
		// out on the connection to the target's agent (ProbeClient).
		o.infra.Browser.HTTPClient = o.pass.Agents.FleetClient(discovery.ProbeBackoffLimit * discovery.DefaultProbeTimeout)
		o.infra.Browser.ProbeClient = o.pass.Agents.ProbeClient
	}
	o.pass.Progress = rollout.ProgressFor(o.log.Format, stderr, log)
	p, err := rollout.New(o.pass)
	if err != nil {
		return err
	}
	req := rollout.Request{DryRun: o.dryRun}
	var res *rollout.Result
	switch {
	case o.listGens:
		return p.ListGenerations(stdout)
	case o.undeploy || o.rollback || o.switchTo != 0:
		man, err := p.Generation(o.switchTo)
		if o.undeploy {
			man, err = p.Undeployed(o.infra.File)
		}
		if err != nil {
			return err
		}
		res, err = p.ApplyManifest(ctx, man, req)
	default:
		res, err = once(ctx, p, o, req, stderr)
	}
	if err != nil || res == nil {
		return err
	}
	return report(o, res, stdout, stderr)
}

// once discovers, keeps the usable targets, augments and applies.
func once(ctx context.Context, p *rollout.Pass, o *options, req rollout.Request, stderr io.Writer) (*rollout.Result, error) {
	if _, err := p.Load(ctx); err != nil {
		return nil, err
	}
	infra, err := o.infra.Once(ctx, o.discoveryTimeout, o.pass.Logger)
	if err != nil {
		return nil, err
	}
	if o.pass.Token != "" {
		var notes []string
		infra, notes = p.Usable(ctx, infra)
		for _, n := range notes {
			fmt.Fprintln(stderr, "note:", n)
		}
	}
	if infra, err = p.Augment(ctx, infra); err != nil {
		return nil, err
	}
	return p.Apply(ctx, infra, req)
}

// report prints the dry-run plan, or the deployed generation (and writes
// the new manifest with -o).
func report(o *options, res *rollout.Result, stdout, stderr io.Writer) error {
	if o.dryRun {
		out, err := res.Render(o.format)
		if err != nil || o.out == "" {
			stdout.Write(out)
			return err
		}
		return model.WriteFileAtomic(o.out, out, 0o644)
	}
	if plan := res.Transition; plan != nil {
		fmt.Fprintf(stderr, "deployed generation %d (%d steps)\n", res.Generation, len(plan.Steps))
		if o.out != "" {
			return model.WriteManifest(o.out, plan.New)
		}
	}
	return nil
}
