// Command dydisnix-snapshot snapshots the state of every stateful service
// of the last deployment into the coordinator's snapshot store, so that a
// service whose machine crashes can be restored elsewhere.
//
//	dydisnix-snapshot --agent-token-file F [--state-dir DIR] [--keep N]
//	dydisnix-snapshot --query-all|--query-latest|--resolve PATH...|--gc [--keep N] [--target NAME]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
)

const doc = `Snapshots every stateful (deployState) service of the last deployment (or of
MANIFEST) on its target and copies the snapshots into the coordinator's
snapshot store, keeping --keep generations per service. A later deployment
that finds a service's machine unreachable restores the newest snapshot
on the service's new machine.

Store queries, as dysnomia-snapshots: --query-all (every generation),
--query-latest (the newest per service/component), --resolve PATH...
(absolute paths), --gc [--keep N] (default 1: keep N generations, delete
the rest). On the coordinator's store (paths SERVICE/HEX.tar.gz; --service
filters) or, with --target NAME, on that target's Dysnomia store (paths
CONTAINER/COMPONENT/ID; --container, --component filter, --check verifies
checksums); the target is reached through the last deployment's
infrastructure.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	keep, parallel int
	services       []string
	agent          cli.Agent
	state          cli.StateDir
	out            cli.Output
	manifest       string
	query          storeQuery
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-snapshot", "--agent-token-file FILE [options] [MANIFEST]", doc)
	c.ExitStatus = "Exit status: 0 success, 1 error (some snapshot failed), 2 usage error."
	c.MaxArgs = 1 << 16 // --resolve takes paths; otherwise at most MANIFEST (checked below)
	var o options
	fs := c.Flags
	o.agent.AddFlags(fs)
	o.state.AddFlags(fs)
	fs.IntVar(&o.keep, "keep", 3, "snapshot generations kept per service")
	fs.StringArrayVar(&o.services, "service", nil, "`NAME` only this service (repeatable)")
	fs.IntVarP(&o.parallel, "max-concurrent-transfers", "m", 4, "`N` snapshots taken in parallel")
	fs.IntVar(&o.parallel, "max-concurrent", 4, "the same as --max-concurrent-transfers")
	fs.MarkHidden("max-concurrent")
	o.query.addFlags(fs)
	o.out.AddFlags(fs, "the list of snapshots taken (or the paths of a query)", "text", "json")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := o.out.Check(); err != nil {
		return c.Exit(err, stderr)
	}
	if o.query.op() != "" {
		if !fs.Changed("keep") {
			o.keep = 1
		}
		return c.Exit(o.runQuery(ctx, fs.Args(), stdout), stderr)
	}
	if fs.NArg() > 1 {
		return c.Exit(cli.Usagef("at most one MANIFEST"), stderr)
	}
	o.manifest = fs.Arg(0)
	if o.keep < 1 || o.parallel < 1 {
		return c.Exit(cli.Usagef("--keep and -m must be positive"), stderr)
	}
	return c.Exit(snapshot(ctx, &o, stdout, stderr), stderr)
}

func snapshot(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	tok, err := o.agent.Token()
	if err != nil {
		return err
	}
	store, err := deployer.OpenStore(o.state.Path(), o.keep)
	if err != nil {
		return err
	}
	var man *model.Manifest
	if o.manifest != "" {
		man, err = model.ReadManifest(o.manifest)
	} else {
		man, err = store.Latest()
		if err == nil && man == nil {
			err = fmt.Errorf("%s holds no deployment: nothing to snapshot", o.state.Path())
		}
	}
	if err != nil {
		return err
	}
	if len(o.services) > 0 {
		man = onlyServices(man, o.services)
	}
	agents, err := o.agent.TLS()
	if err != nil {
		return err
	}
	be := &deployer.AgentBackend{Token: tok, Parallel: o.parallel, TLS: agents}
	infos, snapErr := be.SnapshotAll(ctx, man, store, func(s string) { fmt.Fprintln(stderr, s) })
	var data []byte
	if o.out.Format == "json" {
		data, _ = json.MarshalIndent(infos, "", "  ")
		data = append(data, '\n')
	} else {
		var b strings.Builder
		for _, i := range infos {
			fmt.Fprintf(&b, "%s %s generation %d (%d bytes)\n", i.Service, i.Digest, i.Generation, i.Size)
		}
		data = []byte(b.String())
	}
	if err := o.out.Write(data, stdout, writeFile); err != nil {
		return err
	}
	return snapErr
}

func writeFile(file string, data []byte) error { return model.WriteFileAtomic(file, data, 0o644) }

// onlyServices is man with the snapshots of the named services only.
func onlyServices(man *model.Manifest, names []string) *model.Manifest {
	var sm []model.ServiceMapping
	for _, m := range man.Snapshots {
		if slices.Contains(names, man.Services[m.Service].Name) {
			sm = append(sm, m)
		}
	}
	c := *man
	c.Snapshots = sm
	return &c
}
