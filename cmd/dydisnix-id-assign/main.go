// Command dydisnix-id-assign assigns unique IDs (ports, UIDs, ...) to the
// services that ask for them, keeping earlier assignments (the ids file).
//
//	dydisnix-id-assign -s SVC [-i INFRA -d DIST] --id-resources RES [--ids IDS]
//	    [--service-property P] [--output-file F] [--format json|nix]
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/portassign"
)

const doc = `Assigns a unique ID of every ID resource (ports, UIDs, ...) to each service
whose property PROPERTY (default: requiresUniqueIdsFor) is a list naming that
resource. Assignments of the previous ids file (--ids) are kept while they
remain valid; new IDs continue after the last ID handed out.

With -d (distribution mode) only distributed services get IDs and a resource
may have scope "machine" (unique per target). Without it (services mode)
every service of the services model is considered.

Every model file may be .json, .yaml/.yml or .nix. The result is written to
-o/--output-file atomically (only after the assignment succeeded) or to stdout.
--ids and --output-file may name the same file. An --ids file that does not
exist is the first run; one that cannot be read is an error.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	models               cli.Models
	resources, ids, prop string
	out                  cli.Output
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-id-assign", "-s SERVICES [-i INFRASTRUCTURE -d DISTRIBUTION] --id-resources RESOURCES [options]", doc)
	var o options
	fs := c.Flags
	o.models.AddFlags(fs, cli.ServicesFlag|cli.InfrastructureFlag|cli.DistributionFlag|cli.ExtraParamsFlag)
	fs.StringVar(&o.resources, "id-resources", "", "`FILE` ID resources model {R = {min; max; scope; step;};} (required)")
	fs.StringVar(&o.ids, "ids", "", "`FILE` previous ids file (kept assignments)")
	fs.StringVar(&o.prop, "service-property", portassign.DefaultIDServiceProperty, "`PROPERTY` service property listing the resources a service needs")
	o.out.AddFlags(fs, "the ids file", "json", "nix")
	fs.StringVar(&o.out.File, "output-file", "", "`FILE` the same as --output (the original's name)")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := o.out.Check(); err != nil {
		return c.Exit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(assignIDs(ctx, &o, stdout, stderr), stderr)
}

func assignIDs(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	m := o.models
	if err := m.Require(cli.ServicesFlag); err != nil {
		return err
	}
	switch {
	case o.resources == "":
		return cli.Usagef("An ID resources expression must be specified!")
	case m.Infrastructure != "" && m.Distribution == "":
		return cli.Usagef("-i/--infrastructure needs -d/--distribution")
	case m.Distribution != "" && m.Infrastructure == "" && strings.EqualFold(filepath.Ext(m.Distribution), ".nix"):
		return cli.Usagef("a .nix distribution model needs -i/--infrastructure")
	case o.prop == "":
		return cli.Usagef("--service-property must not be empty")
	}
	nix := model.NixOptions{ExtraParams: m.ExtraParams}
	svcs, err := model.LoadServicesContext(ctx, m.Services, nix)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-id-assign", svcs.Validate(m.Services), stderr)
	res, err := portassign.LoadResources(o.resources)
	if err != nil {
		return err
	}
	req := portassign.IDRequest{Services: svcs, Resources: res, ServiceProperty: o.prop}
	if m.Distribution != "" {
		var inf model.Infrastructure
		if m.Infrastructure != "" {
			if inf, err = model.LoadInfrastructureContext(ctx, m.Infrastructure, nix); err != nil {
				return err
			}
		}
		if req.Distribution, err = model.LoadDistributionContext(ctx, m.Distribution, inf, nix); err != nil {
			return err
		}
		if err := req.Distribution.Validate(m.Distribution, nil, inf); err != nil {
			return err
		}
	}
	if o.ids != "" {
		if req.Previous, err = portassign.LoadPreviousIDs(o.ids); err != nil {
			return err
		}
	}
	out, err := portassign.AssignIDs(req)
	if err != nil {
		return err
	}
	if o.out.Format == "nix" {
		return o.out.Write(out.Nix(), stdout, portassign.WriteFile)
	}
	return o.out.Write(out.JSON(), stdout, portassign.WriteFile)
}
