// Command dydisnix-port-assign is the legacy port assigner of Dynamic
// Disnix: it gives every service whose portAssign property is "shared" a
// port unique in the whole network and every "private" service a port
// unique on its machine, keeping earlier assignments (the ports file).
//
//	dydisnix-port-assign -s SVC -i INFRA -d DIST [-p PORTS]
//	    [--service-property P] [--format json|nix] [-o F]
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/portassign"
)

const usage = `Usage: dydisnix-port-assign -s SERVICES -i INFRASTRUCTURE -d DISTRIBUTION
         [-p PORTS] [--service-property PROPERTY] [--format json|nix] [-o FILE]

Assigns TCP ports to services. A service whose PROPERTY (default: portAssign)
is "shared" gets a port of the global pool (default 3000-4000), unique in the
whole network; "private" gets a port of the pool of its first target (default
8000-9000), unique on that machine. Reservations of the previous ports file
(-p) are kept while they remain valid; new ports continue after the last port
handed out, and a port released in this run is never handed to another
service in the same run.

Prints {"ports": {...}, "portConfiguration": {...}} (or the Nix form) to stdout
or, with -o, writes it atomically (only after the assignment succeeded). The
output is the next run's -p file; -o may name the -p file itself, which may
be missing on the first run.

Options:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("dydisnix-port-assign", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	services := fs.StringP("services", "s", "", "services model")
	infra := fs.StringP("infrastructure", "i", "", "infrastructure model")
	dist := fs.StringP("distribution", "d", "", "distribution model")
	ports := fs.StringP("ports", "p", "", "previous ports file")
	prop := fs.String("service-property", portassign.DefaultPortServiceProperty, "service property selecting the pool (shared or private)")
	outFile := fs.StringP("output", "o", "", "write the ports file here (atomically) instead of stdout")
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
		fmt.Fprintf(stderr, "dydisnix-port-assign: %v\nTry 'dydisnix-port-assign --help' for more information.\n", err)
		return 2
	}
	nixOpts := model.NixOptions{ExtraParams: *extra}
	err := assign(fs, *services, *infra, *dist, *ports, *prop, *outFile, *format, nixOpts, stdout, stderr)
	return cli.Exit("dydisnix-port-assign", err, stderr)
}

func assign(fs *pflag.FlagSet, services, infra, dist, ports, prop, outFile, format string, nixOpts model.NixOptions, stdout, stderr io.Writer) error {
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	case services == "":
		return cli.Usagef("A services expression must be specified!")
	case infra == "":
		return cli.Usagef("An infrastructure expression must be specified!")
	case dist == "":
		return cli.Usagef("A distribution expression must be specified!")
	case format != "json" && format != "nix":
		return cli.Usagef("--format must be json or nix, got %q", format)
	case prop == "":
		return cli.Usagef("--service-property must not be empty")
	}
	svcs, err := model.LoadServicesWith(services, nixOpts)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-port-assign", svcs.Validate(services), stderr)
	inf, err := model.LoadInfrastructureWith(infra, nixOpts)
	if err != nil {
		return err
	}
	d, err := model.LoadDistributionWith(dist, inf, nixOpts)
	if err != nil {
		return err
	}
	for _, svc := range d.Names() {
		for i, t := range d.Targets(svc) {
			if _, ok := inf[t]; !ok {
				return &model.Error{File: dist, Place: fmt.Sprintf("%s[%d]", svc, i), Msg: fmt.Sprintf("target %q is not in the infrastructure model", t)}
			}
		}
	}
	req := portassign.PortRequest{Services: svcs, Distribution: d, ServiceProperty: prop}
	if ports != "" && !firstRun(ports, outFile) {
		if req.Previous, err = portassign.LoadPortConfig(ports); err != nil {
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

// firstRun reports whether the previous file is also the output file and
// does not exist yet: the first run of a -p F -o F cycle.
func firstRun(prev, out string) bool {
	if out == "" || filepath.Clean(prev) != filepath.Clean(out) {
		return false
	}
	_, err := os.Stat(prev)
	return errors.Is(err, os.ErrNotExist)
}
