// Command dydisnix-port-assign is the legacy port assigner of Dynamic
// Disnix: it gives every service whose portAssign property is "shared" a
// port unique in the whole network and every "private" service a port
// unique on its machine, keeping earlier assignments (the ports file).
//
//	dydisnix-port-assign -s SVC -i INFRA -d DIST [-p PORTS]
//	    [--service-property P] [--format json|nix] [-o F]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/portassign"
)

const doc = `Assigns TCP ports to services. A service whose PROPERTY (default: portAssign)
is "shared" gets a port of the global pool (default 3000-4000), unique in the
whole network; "private" gets a port of the pool of its first target (default
8000-9000), unique on that machine. Reservations of the previous ports file
(-p) are kept while they remain valid; new ports continue after the last port
handed out, and a port released in this run is never handed to another
service in the same run.

Prints {"ports": {...}, "portConfiguration": {...}} (or the Nix form) to stdout
or, with -o, writes it atomically (only after the assignment succeeded). The
output is the next run's -p file; -o may name the -p file itself. A -p file
that does not exist is the first run; one that cannot be read is an error.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	models      cli.Models
	ports, prop string
	out         cli.Output
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-port-assign", `-s SERVICES -i INFRASTRUCTURE -d DISTRIBUTION [-p PORTS] [options]`, doc)
	var o options
	fs := c.Flags
	o.models.AddFlags(fs, required|cli.ExtraParamsFlag|cli.XMLFlag)
	fs.StringVarP(&o.ports, "ports", "p", "", "`FILE` previous ports file")
	fs.StringVar(&o.prop, "service-property", portassign.DefaultPortServiceProperty, "`PROPERTY` service property selecting the pool (shared or private)")
	o.out.AddFlags(fs, "the ports file", "json", "nix", "xml")
	outputXML := fs.Bool("output-xml", false, "write the port configuration as the original's XML (the same as -f xml; the ports section is left out)")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if *outputXML && fs.Changed("format") && o.out.Format != "xml" {
		return c.Exit(cli.Usagef("--output-xml contradicts -f %s", o.out.Format), stderr)
	} else if *outputXML {
		fs.Set("format", "xml") //nolint:errcheck // xml is one of -f's formats
	}
	if err := o.out.Check(); err != nil {
		return c.Exit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(assignPorts(ctx, &o, stdout, stderr), stderr)
}

// required are the models port-assign needs.
const required = cli.ServicesFlag | cli.InfrastructureFlag | cli.DistributionFlag

func assignPorts(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	m := o.models
	if err := m.Require(required); err != nil {
		return err
	}
	if o.prop == "" {
		return cli.Usagef("--service-property must not be empty")
	}
	nix := model.NixOptions{ExtraParams: m.ExtraParams}
	svcs, err := m.LoadServices(ctx, nix)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-port-assign", svcs.Validate(m.Services), stderr)
	inf, err := m.LoadInfrastructure(ctx, nix)
	if err != nil {
		return err
	}
	d, err := m.LoadDistribution(ctx, inf, nix)
	if err != nil {
		return err
	}
	if err := d.Validate(m.Distribution, nil, inf); err != nil {
		return err
	}
	req := portassign.PortRequest{Services: svcs, Distribution: d, ServiceProperty: o.prop}
	if o.ports != "" && m.XML {
		v, err := m.Load(ctx, o.ports, model.KindPlain, nil, nix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("previous ports file: %w", err)
		} else if err == nil {
			if req.Previous, err = portassign.ParsePortConfig(v, o.ports); err != nil {
				return err
			}
		}
	} else if o.ports != "" {
		if req.Previous, err = portassign.LoadPreviousPortConfig(o.ports); err != nil {
			return err
		}
	}
	out, err := portassign.AssignPorts(req)
	if err != nil {
		return err
	}
	for _, w := range out.Warnings {
		fmt.Fprintln(stderr, w)
	}
	switch o.out.Format {
	case "nix":
		return o.out.Write(out.Nix(), stdout, portassign.WriteFile)
	case "xml":
		text, err := model.PortsXML(out.Value())
		if err != nil {
			return fmt.Errorf("--output-xml: %w", err)
		}
		return o.out.Write([]byte(text), stdout, portassign.WriteFile)
	}
	return o.out.Write(out.JSON(), stdout, portassign.WriteFile)
}
