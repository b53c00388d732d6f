// Command dydisnix-id-assign assigns unique IDs (ports, UIDs, ...) to the
// services that ask for them, keeping earlier assignments (the ids file).
//
//	dydisnix-id-assign -s SVC [-i INFRA -d DIST] --id-resources RES [--ids IDS]
//	    [--service-property P] [--output-file F] [--format json|nix]
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/portassign"
)

const usage = `Usage: dydisnix-id-assign -s SERVICES [-i INFRASTRUCTURE -d DISTRIBUTION]
         --id-resources RESOURCES [--ids IDS] [--service-property PROPERTY]
         [--output-file FILE] [--format json|nix]

Assigns a unique ID of every ID resource (ports, UIDs, ...) to each service
whose property PROPERTY (default: requiresUniqueIdsFor) is a list naming that
resource. Assignments of the previous ids file (--ids) are kept while they
remain valid; new IDs continue after the last ID handed out.

With -d (distribution mode) only distributed services get IDs and a resource
may have scope "machine" (unique per target). Without it (services mode)
every service of the services model is considered.

Every model file may be .json, .yaml/.yml or .nix. The result is written to
--output-file atomically (only after the assignment succeeded) or to stdout.
--ids and --output-file may name the same file; on the first run it may be
missing.

Options:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("dydisnix-id-assign", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	services := fs.StringP("services", "s", "", "services model")
	infra := fs.StringP("infrastructure", "i", "", "infrastructure model (distribution mode)")
	dist := fs.StringP("distribution", "d", "", "distribution model (distribution mode)")
	resources := fs.String("id-resources", "", "ID resources model {R = {min; max; scope; step;};}")
	ids := fs.String("ids", "", "previous ids file (kept assignments)")
	prop := fs.String("service-property", portassign.DefaultIDServiceProperty, "service property listing the resources a service needs")
	outFile := fs.String("output-file", "", "write the ids file here (atomically) instead of stdout")
	fs.StringVarP(outFile, "output", "o", "", "same as --output-file")
	format := fs.String("format", "json", "output format: json or nix")
	extra := fs.String("extra-params", "", "Nix expression of extra arguments for .nix models, e.g. '{ x = 1; }'")
	fs.Usage = func() {} // help is printed below, to stdout
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, usage)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "dydisnix-id-assign: %v\nTry 'dydisnix-id-assign --help' for more information.\n", err)
		return 2
	}
	nixOpts := model.NixOptions{ExtraParams: *extra}
	err := assign(fs, *services, *infra, *dist, *resources, *ids, *prop, *outFile, *format, nixOpts, stdout, stderr)
	return cli.Exit("dydisnix-id-assign", err, stderr)
}

func assign(fs *pflag.FlagSet, services, infra, dist, resources, ids, prop, outFile, format string, nixOpts model.NixOptions, stdout, stderr io.Writer) error {
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	case services == "":
		return cli.Usagef("A services expression must be specified!")
	case resources == "":
		return cli.Usagef("An ID resources expression must be specified!")
	case infra != "" && dist == "":
		return cli.Usagef("-i/--infrastructure needs -d/--distribution")
	case format != "json" && format != "nix":
		return cli.Usagef("--format must be json or nix, got %q", format)
	case prop == "":
		return cli.Usagef("--service-property must not be empty")
	}
	if dist != "" && infra == "" && strings.EqualFold(filepath.Ext(dist), ".nix") {
		return cli.Usagef("a .nix distribution model needs -i/--infrastructure")
	}
	svcs, err := model.LoadServicesWith(services, nixOpts)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-id-assign", svcs.Validate(services), stderr)
	res, err := portassign.LoadResources(resources)
	if err != nil {
		return err
	}
	req := portassign.IDRequest{Services: svcs, Resources: res, ServiceProperty: prop}
	if dist != "" {
		var inf model.Infrastructure
		if infra != "" {
			if inf, err = model.LoadInfrastructureWith(infra, nixOpts); err != nil {
				return err
			}
		}
		d, err := model.LoadDistributionWith(dist, inf, nixOpts)
		if err != nil {
			return err
		}
		if err := checkTargets(d, inf, dist); err != nil {
			return err
		}
		req.Distribution = d
	}
	if ids != "" && !firstRun(ids, outFile) {
		if req.Previous, err = portassign.LoadIDs(ids); err != nil {
			return err
		}
	}
	out, err := portassign.AssignIDs(req)
	if err != nil {
		return err
	}
	data := out.JSON()
	if format == "nix" {
		data = out.Nix()
	}
	if outFile != "" {
		return portassign.WriteFile(outFile, data)
	}
	_, err = stdout.Write(data)
	return err
}

// checkTargets reports a distribution that maps a service to a target the
// infrastructure model does not have.
func checkTargets(d model.Distribution, inf model.Infrastructure, file string) error {
	if inf == nil {
		return nil
	}
	for _, svc := range d.Names() {
		for i, t := range d.Targets(svc) {
			if _, ok := inf[t]; !ok {
				return &model.Error{File: file, Place: fmt.Sprintf("%s[%d]", svc, i), Msg: fmt.Sprintf("target %q is not in the infrastructure model", t)}
			}
		}
	}
	return nil
}

// firstRun reports whether the previous file is also the output file and
// does not exist yet: the first run of a --ids F --output-file F cycle.
func firstRun(prev, out string) bool {
	if out == "" || filepath.Clean(prev) != filepath.Clean(out) {
		return false
	}
	_, err := os.Stat(prev)
	return errors.Is(err, os.ErrNotExist)
}
