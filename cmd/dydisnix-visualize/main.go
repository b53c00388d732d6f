// Command dydisnix-visualize draws a deployment architecture: targets as
// boxes, the services placed on them inside, solid arrows for dependsOn and
// dashed ones for connectsTo, as Graphviz DOT or as SVG (the same picture
// as the dydisnix-self-adapt status page).
//
//	dydisnix-visualize -s services.nix -i infrastructure.nix -d distribution.nix --format svg -o arch.svg
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/adapt/visual"
	"github.com/dydisnix/dydisnix/model"
)

const usage = `Usage: dydisnix-visualize -s SERVICES -i INFRASTRUCTURE -d DISTRIBUTION [options]

Prints the deployment architecture: every target of the infrastructure as a
box holding the services the distribution places on it, a solid arrow per
dependsOn and a dashed arrow per connectsTo (from each instance to every
instance of the service it uses). Services without a target are drawn apart,
marked "unplaced".

Options:
  -s, --services FILE         services model (required)
  -i, --infrastructure FILE   infrastructure model (required)
  -d, --distribution FILE     distribution model (required)
  -f, --format FMT            dot (default) or svg
  -o, --output FILE           write to FILE (atomically) instead of stdout
  -h, --help                  show this help

Model files are .json, .yaml/.yml or .nix. Exit status: 0 success, 1 model
error, 2 usage error.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("dydisnix-visualize", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	svcFile := fs.StringP("services", "s", "", "")
	infraFile := fs.StringP("infrastructure", "i", "", "")
	distFile := fs.StringP("distribution", "d", "", "")
	format := fs.StringP("format", "f", "dot", "")
	out := fs.StringP("output", "o", "", "")
	help := fs.BoolP("help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-visualize: %v\n\n%s", err, usage)
		return 2
	}
	if *help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	uerr := func(msg string) int {
		fmt.Fprintf(stderr, "dydisnix-visualize: %s\n\n%s", msg, usage)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return uerr("unexpected arguments: " + strings.Join(fs.Args(), " "))
	case *svcFile == "":
		return uerr("-s/--services is required")
	case *infraFile == "":
		return uerr("-i/--infrastructure is required")
	case *distFile == "":
		return uerr("-d/--distribution is required")
	case *format != "dot" && *format != "svg":
		return uerr("--format: expected dot or svg")
	}
	text, err := render(*svcFile, *infraFile, *distFile, *format)
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-visualize:", err)
		return 1
	}
	if *out != "" {
		if err := model.WriteFileAtomic(*out, []byte(text), 0o644); err != nil {
			fmt.Fprintln(stderr, "dydisnix-visualize:", err)
			return 1
		}
		return 0
	}
	if _, err := io.WriteString(stdout, text); err != nil {
		fmt.Fprintln(stderr, "dydisnix-visualize:", err)
		return 1
	}
	return 0
}

func render(svcFile, infraFile, distFile, format string) (string, error) {
	svcs, err := model.LoadServices(svcFile)
	if err != nil {
		return "", err
	}
	if err := svcs.Validate(svcFile); err != nil {
		return "", err
	}
	infra, err := model.LoadInfrastructure(infraFile)
	if err != nil {
		return "", err
	}
	dist, err := model.LoadDistribution(distFile, infra)
	if err != nil {
		return "", err
	}
	for _, s := range dist.Names() {
		if _, ok := svcs[s]; !ok {
			return "", fmt.Errorf("%s: service %q is not in the services model %s", distFile, s, svcFile)
		}
		for _, t := range dist.Targets(s) {
			if _, ok := infra[t]; !ok {
				return "", fmt.Errorf("%s: service %q is mapped to target %q, which is not in the infrastructure %s", distFile, s, t, infraFile)
			}
		}
	}
	d := visual.Build(svcs, infra.Names(), dist, nil)
	if format == "svg" {
		return d.SVG(), nil
	}
	return d.DOT(), nil
}
