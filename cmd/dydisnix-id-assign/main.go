// Command dydisnix-id-assign assigns unique IDs (ports, UIDs, ...) to the
// services that ask for them, keeping earlier assignments (the ids file).
//
//	dydisnix-id-assign -s SVC [-i INFRA -d DIST] --id-resources RES [--ids IDS]
//	    [--service-property P] [--output-file F] [--format json|nix]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	o.models.AddFlags(fs, cli.ServicesFlag|cli.InfrastructureFlag|cli.DistributionFlag|cli.ExtraParamsFlag|cli.XMLFlag)
	fs.StringVar(&o.resources, "id-resources", "", "`FILE` ID resources model {R = {min; max; scope; step;};} (required)")
	fs.StringVar(&o.ids, "ids", "", "`FILE` previous ids file (kept assignments)")
	fs.StringVar(&o.prop, "service-property", portassign.DefaultIDServiceProperty, "`PROPERTY` service property listing the resources a service needs")
	o.out.AddFlags(fs, "the ids file", "json", "nix", "xml")
	fs.StringVar(&o.out.File, "output-file", "", "`FILE` the same as --output (the original's name)")
	outputXML := fs.Bool("output-xml", false, "write the original's XML ids file (the same as -f xml)")
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
	case m.Distribution != "" && m.Infrastructure == "" && !m.XML && strings.EqualFold(filepath.Ext(m.Distribution), ".nix"):
		return cli.Usagef("a .nix distribution model needs -i/--infrastructure")
	case o.prop == "":
		return cli.Usagef("--service-property must not be empty")
	}
	nix := model.NixOptions{ExtraParams: m.ExtraParams}
	svcs, err := m.LoadServices(ctx, nix)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-id-assign", svcs.Validate(m.Services), stderr)
	resv, err := m.Load(ctx, o.resources, model.KindPlain, nil, model.NixOptions{})
	if err != nil {
		return fmt.Errorf("load ID resources: %w", err)
	}
	res, err := portassign.ParseResources(resv, o.resources)
	if err != nil {
		return err
	}
	req := portassign.IDRequest{Services: svcs, Resources: res, ServiceProperty: o.prop}
	if m.Distribution != "" {
		var inf model.Infrastructure
		if m.Infrastructure != "" {
			if inf, err = m.LoadInfrastructure(ctx, nix); err != nil {
				return err
			}
		}
		if req.Distribution, err = m.LoadDistribution(ctx, inf, nix); err != nil {
			return err
		}
		if err := req.Distribution.Validate(m.Distribution, nil, inf); err != nil {
			return err
		}
	}
	if req.Previous, err = previousIDs(ctx, m, o.ids); err != nil {
		return err
	}
	out, err := portassign.AssignIDs(req)
	if err != nil {
		return err
	}
	switch o.out.Format {
	case "nix":
		return o.out.Write(out.Nix(), stdout, portassign.WriteFile)
	case "xml":
		return o.out.Write([]byte(model.IDsXML(out.Value())), stdout, portassign.WriteFile)
	}
	return o.out.Write(out.JSON(), stdout, portassign.WriteFile)
}

// previousIDs reads the ids file of the previous run (--ids, as XML with
// --xml): nil when none is given or it does not exist yet.
func previousIDs(ctx context.Context, m cli.Models, file string) (*portassign.IDs, error) {
	switch {
	case file == "":
		return nil, nil
	case !m.XML:
		return portassign.LoadPreviousIDs(file)
	}
	v, err := m.Load(ctx, file, model.KindPlain, nil, model.NixOptions{})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("previous ids file: %w", err)
	}
	return portassign.ParseIDs(v, file)
}
