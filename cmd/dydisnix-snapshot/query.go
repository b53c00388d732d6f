package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/cli"
)

// storeQuery holds the dysnomia-snapshots style operations.
type storeQuery struct {
	all, latest, resolve, gc, check bool
	target, container, component    string
}

func (q *storeQuery) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&q.all, "query-all", false, "list every snapshot generation in the store (relative paths)")
	fs.BoolVar(&q.latest, "query-latest", false, "list the newest snapshot of each service (component)")
	fs.BoolVar(&q.resolve, "resolve", false, "print the absolute paths of the relative snapshot paths given as arguments")
	fs.BoolVar(&q.gc, "gc", false, "keep the newest --keep generations (default 1 here) and delete the older snapshots")
	fs.StringVar(&q.target, "target", "", "`NAME` query that target's Dysnomia store through its agent instead of the coordinator's store")
	fs.StringVar(&q.container, "container", "", "`NAME` only this container (with --target)")
	fs.StringVar(&q.component, "component", "", "`NAME` only this component (with --target)")
	fs.BoolVar(&q.check, "check", false, "verify the checksums of the snapshots listed (with --target)")
}

// op returns the operation asked for ("" = take snapshots).
func (q *storeQuery) op() string {
	switch {
	case q.all:
		return agentapi.QueryAll
	case q.latest:
		return agentapi.QueryLatest
	case q.resolve:
		return agentapi.QueryResolve
	case q.gc:
		return agentapi.QueryGC
	}
	return ""
}

// runQuery answers a store query and writes the paths, one per line (or
// a JSON list with --format json).
func (o *options) runQuery(ctx context.Context, args []string, stdout io.Writer) error {
	q := &o.query
	n := 0
	for _, b := range []bool{q.all, q.latest, q.resolve, q.gc} {
		if b {
			n++
		}
	}
	if n > 1 {
		return cli.Usagef("--query-all, --query-latest, --resolve and --gc exclude each other")
	}
	if op := q.op(); (op == agentapi.QueryResolve) != (len(args) > 0) {
		return cli.Usagef("--resolve takes relative snapshot paths; the other queries take no argument")
	}
	if o.keep < 0 {
		return cli.Usagef("--keep must not be negative")
	}
	var paths []string
	var err error
	if q.target != "" {
		paths, err = o.targetQuery(ctx, args)
	} else {
		if q.container != "" || q.check {
			return cli.Usagef("--container and --check apply to a target's store (--target)")
		}
		paths, err = o.coordinatorQuery(args)
	}
	if err != nil {
		return err
	}
	var data []byte
	if o.out.Format == "json" {
		if paths == nil {
			paths = []string{}
		}
		data, _ = json.MarshalIndent(paths, "", "  ")
		data = append(data, '\n')
	} else if len(paths) > 0 {
		data = []byte(strings.Join(paths, "\n") + "\n")
	}
	return o.out.Write(data, stdout, writeFile)
}

func (o *options) coordinatorQuery(args []string) ([]string, error) {
	store, err := deployer.OpenStore(o.state.Path(), o.keep)
	if err != nil {
		return nil, err
	}
	q := &o.query
	service := q.component
	if len(o.services) == 1 {
		service = o.services[0]
	}
	switch q.op() {
	case agentapi.QueryAll, agentapi.QueryLatest:
		return store.SnapshotPaths(service, q.latest)
	case agentapi.QueryResolve:
		var out []string
		for _, a := range args {
			p, err := store.ResolveSnapshot(a)
			if err != nil {
				return out, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	return store.TrimSnapshots(o.keep, service)
}

func (o *options) targetQuery(ctx context.Context, args []string) ([]string, error) {
	store, err := deployer.OpenStore(o.state.Path(), 0)
	if err != nil {
		return nil, err
	}
	man, err := store.Latest()
	if err != nil {
		return nil, err
	}
	if man == nil || man.Infrastructure[o.query.target] == nil {
		return nil, fmt.Errorf("target %s is not in the infrastructure of the last deployment in %s", o.query.target, o.state.Path())
	}
	tok, err := o.agent.Token()
	if err != nil {
		return nil, err
	}
	agents, err := o.agent.TLS()
	if err != nil {
		return nil, err
	}
	be := &deployer.AgentBackend{Token: tok, TLS: agents}
	c, err := be.Client(o.query.target, man)
	if err != nil {
		return nil, err
	}
	q := o.query
	res, err := c.DysnomiaSnapshots(ctx, agentapi.SnapshotsQuery{Op: q.op(), Container: q.container, Component: q.component,
		Check: q.check, Keep: o.keep, Paths: args})
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", q.target, err)
	}
	return res.Paths, nil
}
