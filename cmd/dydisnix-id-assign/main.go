// Command dydisnix-id-assign assigns unique IDs (ports, UIDs, ...) to the
// services that ask for them, keeping earlier assignments (the ids file).
//
//	dydisnix-id-assign -s SVC [-i INFRA -d DIST] --id-resources RES [--ids IDS]
//	    [--service-property P] [--output-file F] [--format json|nix]
package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"

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
--output-file atomically (only after the assignment succeeded) or to stdout.
--ids and --output-file may name the same file; on the first run it may be
missing.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	services, infra, dist, resources, ids, prop, output, format string
	nix                                                         model.NixOptions
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-id-assign", `-s SERVICES [-i INFRASTRUCTURE -d DISTRIBUTION] --id-resources RESOURCES
[--ids IDS] [options]`, doc)
	var o options
	fs := c.Flags
	fs.StringVarP(&o.services, "services", "s", "", "`FILE` services model (required)")
	fs.StringVarP(&o.infra, "infrastructure", "i", "", "`FILE` infrastructure model (distribution mode)")
	fs.StringVarP(&o.dist, "distribution", "d", "", "`FILE` distribution model (distribution mode)")
	fs.StringVar(&o.resources, "id-resources", "", "`FILE` ID resources model {R = {min; max; scope; step;};} (required)")
	fs.StringVar(&o.ids, "ids", "", "`FILE` previous ids file (kept assignments)")
	fs.StringVar(&o.prop, "service-property", portassign.DefaultIDServiceProperty, "`PROPERTY` service property listing the resources a service needs")
	fs.StringVarP(&o.output, "output-file", "o", "", "write the ids file to `FILE` (atomically) instead of stdout")
	fs.StringVar(&o.output, "output", "", "same as --output-file")
	fs.MarkHidden("output")
	cli.ChoiceVarP(fs, &o.format, "format", "", "json", "`FMT` output format: json or nix", "json", "nix")
	fs.StringVar(&o.nix.ExtraParams, "extra-params", "", "`EXPR` Nix attribute set of extra arguments for .nix models, e.g. '{ x = 1; }'")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	return c.Exit(assign(&o, stdout, stderr), stderr)
}

func assign(o *options, stdout, stderr io.Writer) error {
	switch {
	case o.services == "":
		return cli.Usagef("A services expression must be specified!")
	case o.resources == "":
		return cli.Usagef("An ID resources expression must be specified!")
	case o.infra != "" && o.dist == "":
		return cli.Usagef("-i/--infrastructure needs -d/--distribution")
	case o.dist != "" && o.infra == "" && strings.EqualFold(filepath.Ext(o.dist), ".nix"):
		return cli.Usagef("a .nix distribution model needs -i/--infrastructure")
	case o.prop == "":
		return cli.Usagef("--service-property must not be empty")
	}
	svcs, err := model.LoadServicesWith(o.services, o.nix)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-id-assign", svcs.Validate(o.services), stderr)
	res, err := portassign.LoadResources(o.resources)
	if err != nil {
		return err
	}
	req := portassign.IDRequest{Services: svcs, Resources: res, ServiceProperty: o.prop}
	if o.dist != "" {
		var inf model.Infrastructure
		if o.infra != "" {
			if inf, err = model.LoadInfrastructureWith(o.infra, o.nix); err != nil {
				return err
			}
		}
		if req.Distribution, err = model.LoadDistributionWith(o.dist, inf, o.nix); err != nil {
			return err
		}
		if err := req.Distribution.Validate(o.dist, nil, inf); err != nil {
			return err
		}
	}
	if cli.ReadPrevious(o.ids, o.output) {
		if req.Previous, err = portassign.LoadIDs(o.ids); err != nil {
			return err
		}
	}
	out, err := portassign.AssignIDs(req)
	if err != nil {
		return err
	}
	data := out.JSON()
	if o.format == "nix" {
		data = out.Nix()
	}
	if o.output != "" {
		return portassign.WriteFile(o.output, data)
	}
	_, err = stdout.Write(data)
	return err
}
