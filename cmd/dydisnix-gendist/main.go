// Command dydisnix-gendist computes a distribution from a services model, an
// infrastructure model and a QoS policy, optionally explaining every
// placement decision.
//
//	dydisnix-gendist -s services.nix -i infrastructure.nix -q qos.yaml [--explain]
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/cmd/dydisnix-gendist/gendist"
	"github.com/dydisnix/dydisnix/internal/cli"
)

const doc = `Computes a distribution: the candidate distribution starts as the cartesian
product of services and targets (or -d INITIAL), and every step of the QoS
policy filters it. Model files are .json, .yaml/.yml or .nix; -f nix (or -o
FILE.nix) writes the distribution as the original's Disnix distribution
function {infrastructure}: { ... }, -f xml (--output-xml) as its XML.
A script's -d $(dydisnix-gendist ... --no-out-link) gets a Nix distribution
file, as with the original.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-gendist", "-s SERVICES -i INFRASTRUCTURE [-q POLICY] [options]\n--list-policies", doc)
	var o gendist.Options
	var listPolicies bool
	fs := c.Flags
	var m cli.Models
	m.AddFlags(fs, cli.ServicesFlag|cli.InfrastructureFlag)
	fs.StringVarP(&o.QoS, "qos", "q", "", "`POLICY` QoS model: a Nix QoS model {services, infrastructure, initialDistribution, previousDistribution, filters, lib}: ..., a policy file (.yaml, .json, .nix) or builtin:NAME; without it the initial distribution is printed")
	fs.StringVarP(&o.Filters, "filters", "F", "", "`FILE` filter catalog {pkgs, referenceFilters}: { name = filter; ... } replacing the filters a Nix QoS model gets")
	fs.StringVarP(&o.Initial, "distribution", "d", "", "`FILE` initial candidate distribution instead of the cartesian product")
	fs.StringVar(&o.Previous, "previous", "", "`FILE` distribution of the last deployment: a distribution model, or a Disnix manifest (.json with serviceMappings, or manifest .xml)")
	fs.StringVarP(&o.Profile, "profile", "p", "default", "`NAME` coordinator profile: without --previous, the manifest <coordinator-profile-path>/<profile> points to, if it exists, is the previous distribution")
	fs.StringVar(&o.ProfilePath, "coordinator-profile-path", "", "`DIR` coordinator profiles directory (default /nix/var/nix/profiles/per-user/$USER/disnix-coordinator)")
	m.AddFlags(fs, cli.ExtraParamsFlag)
	fs.StringVar(&o.Nix.TargetProperty, "target-property", "", "`NAME` default property naming a target in a .nix distribution (default $DISNIX_TARGET_PROPERTY or hostname)")
	fs.BoolVar(&o.Nix.ShowTrace, "show-trace", false, "pass --show-trace to nix-instantiate")
	fs.BoolVar(&o.FilterBuildable, "filter-buildable", false, "first drop the targets a service cannot be built for: the service's supportedSystems, and with a .nix services model the package must instantiate (nix-instantiate, no build) for the target's system")
	fs.BoolVar(&o.Explain, "explain", false, "explain, per service, which step removed which target and why (on stderr)")
	cli.ChoiceVarP(fs, &o.ExplainFormat, "explain-format", "", "text", "`FMT` explanation format: text or json", "text", "json")
	fs.StringVar(&o.ExplainOutput, "explain-output", "", "write the explanation to `FILE` instead of stderr")
	fs.StringArrayVar(&o.ExplainServices, "explain-service", nil, "`NAME` explain only this service (repeatable)")
	fs.BoolVar(&o.AllowEmpty, "allow-empty", false, "print services left without a target as [] (the original's behaviour) instead of failing")
	o.Out.AddFlags(fs, "the distribution", "json", "nix", "xml")
	outputXML := fs.Bool("output-xml", false, "write the original's XML distribution (the same as -f xml)")
	fs.BoolVar(&o.NoOutLink, "no-out-link", false, "write the distribution (Nix, or XML with --output-xml) to -o or a new file in $TMPDIR and print the file's path, as the original printed its store path")
	fs.BoolVar(&o.Stdout, "stdout", false, "print the distribution itself (Nix, or XML with --output-xml), as the original's --stdout")
	fs.String("interface", "", "`PROGRAM` Disnix client interface: accepted for the original's scripts; unused (nothing here reaches the targets)")
	fs.BoolVar(&listPolicies, "list-policies", false, "list the shipped policies (builtin:NAME) and exit")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := outputForm(fs, &o, *outputXML); err != nil {
		return c.Exit(err, stderr)
	}
	if listPolicies {
		gendist.ListPolicies(stdout)
		return 0
	}
	if err := m.Require(cli.ServicesFlag | cli.InfrastructureFlag); err != nil {
		return c.Exit(err, stderr)
	}
	o.Services, o.Infrastructure, o.Nix.ExtraParams = m.Services, m.Infrastructure, m.ExtraParams
	if o.ExplainOutput != "" || len(o.ExplainServices) > 0 || fs.Changed("explain-format") {
		o.Explain = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(gendist.Run(ctx, &o, stdout, stderr), stderr)
}

// outputForm settles the output format: --output-xml is -f xml, and
// --stdout or --no-out-link without -f print the original's Nix form;
// then the name of -o decides (cli.Output.Check).
func outputForm(fs *pflag.FlagSet, o *gendist.Options, outputXML bool) error {
	switch {
	case outputXML && fs.Changed("format") && o.Out.Format != "xml":
		return cli.Usagef("--output-xml contradicts -f %s", o.Out.Format)
	case outputXML:
		fs.Set("format", "xml") //nolint:errcheck // xml is one of -f's formats
	case (o.Stdout || o.NoOutLink) && !fs.Changed("format"):
		o.Out.Format = "nix"
	}
	return o.Out.Check()
}
