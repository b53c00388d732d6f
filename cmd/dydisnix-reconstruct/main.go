// Command dydisnix-reconstruct rebuilds the coordinator's manifest from the
// profile manifests the targets' agents keep and installs it as the newest
// generation, so that a redeploy after losing the coordinator's state
// deactivates what is obsolete instead of colliding with it.
//
//	dydisnix-reconstruct -i infrastructure.nix --agent-token-file F [--state-dir DIR]
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/reconstruct"
)

const doc = `Queries the agent of every target of the infrastructure for its profile
manifest (what it runs), aggregates them into a manifest and installs it as
the newest generation of the coordinator's state (unless it equals the
newest one). Unreachable targets are reported and skipped.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	models                      cli.Models
	augment, targetProp, output string
	timeout                     time.Duration
	dryRun                      bool
	agent                       cli.Agent
	state                       cli.StateDir
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-reconstruct", "-i INFRASTRUCTURE --agent-token-file FILE [options]\n--agent-token-file FILE [options] INFRASTRUCTURE", doc)
	c.MaxArgs = 1 // the infrastructure model may be given as the argument
	var o options
	fs := c.Flags
	o.models.AddFlags(fs, cli.InfrastructureFlag)
	fs.StringVarP(&o.augment, "augment", "a", "", "`FILE` augmentation model (e.g. to add agentURL or secrets)")
	o.agent.AddFlags(fs)
	o.state.AddFlags(fs)
	fs.StringVar(&o.targetProp, "target-property", "", "`NAME` default target property holding the agent URL (agentURL)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-target query `DURATION`")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the reconstructed manifest, install nothing")
	fs.StringVarP(&o.output, "output", "o", "", "also write the manifest to `FILE`")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	switch {
	case o.models.Infrastructure != "" && fs.NArg() > 0:
		return c.Exit(cli.Usagef("unexpected argument %q (the infrastructure model is given with -i)", fs.Arg(0)), stderr)
	case fs.NArg() > 0:
		o.models.Infrastructure = fs.Arg(0)
	}
	if err := o.models.Require(cli.InfrastructureFlag); err != nil {
		return c.Exit(err, stderr)
	}
	if err := (&cli.Output{File: o.output}).Check(); err != nil { // a manifest is JSON, never .nix
		return c.Exit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(reconstructState(ctx, &o, stdout, stderr), stderr)
}

func reconstructState(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	infra, err := model.LoadInfrastructure(o.models.Infrastructure)
	if err != nil {
		return err
	}
	if o.augment != "" {
		aug, err := augment.Load(o.augment, augment.Options{})
		if err != nil {
			return err
		}
		if infra, err = aug.Apply(ctx, infra); err != nil {
			return fmt.Errorf("augment %s: %w", o.augment, err)
		}
	}
	tok, err := o.agent.Token()
	if err != nil {
		return err
	}
	agents, err := o.agent.TLS()
	if err != nil {
		return err
	}
	be := &deployer.AgentBackend{Token: tok, TLS: agents}
	res := reconstruct.FromTargets(ctx, infra, o.targetProp, reconstruct.Agents{Backend: be, Timeout: o.timeout})
	for _, t := range slices.Sorted(maps.Keys(res.Unreachable)) {
		fmt.Fprintf(stderr, "dydisnix-reconstruct: target %s skipped: %v\n", t, res.Unreachable[t])
	}
	man := res.Manifest
	fmt.Fprintf(stderr, "reconstructed %d service mappings on %d targets\n", len(man.Mappings), len(man.Targets()))
	if o.output != "" || o.dryRun {
		data, err := model.MarshalManifest(man)
		if err != nil {
			return err
		}
		out := cli.Output{File: o.output}
		if err := out.Write(data, stdout, func(file string, data []byte) error { return model.WriteFileAtomic(file, data, 0o644) }); err != nil {
			return err
		}
	}
	if o.dryRun {
		return nil
	}
	return install(o.state.Path(), man, stderr)
}

// install saves man as the newest generation of the coordinator's state,
// unless it equals the newest one.
func install(stateDir string, man *model.Manifest, stderr io.Writer) error {
	store, err := deployer.OpenStore(stateDir, 0)
	if err != nil {
		return err
	}
	unlock, err := store.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	latest, err := store.Latest()
	if err != nil {
		return err
	}
	gen, err := store.SaveManifest(man)
	if err != nil {
		return err
	}
	if latest != nil && latest.Generation == gen {
		fmt.Fprintf(stderr, "coordinator manifest unchanged (generation %d)\n", gen)
	} else {
		fmt.Fprintf(stderr, "installed as generation %d\n", gen)
	}
	return nil
}
