// Command dydisnix-visualize draws a deployment architecture: targets as
// boxes, the services placed on them inside, solid arrows for dependsOn and
// dashed ones for connectsTo, as Graphviz DOT or as SVG (the same picture
// as the dydisnix-self-adapt status page).
//
//	dydisnix-visualize -s services.nix -i infrastructure.nix -d distribution.nix --format svg -o arch.svg
package main

import (
	"io"
	"os"

	"github.com/dydisnix/dydisnix/adapt/visual"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
)

const doc = `Prints the deployment architecture: every target of the infrastructure as a
box holding the services the distribution places on it, a solid arrow per
dependsOn and a dashed arrow per connectsTo (from each instance to every
instance of the service it uses). Services without a target are drawn apart,
marked "unplaced". Model files are .json, .yaml/.yml or .nix.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-visualize", "-s SERVICES -i INFRASTRUCTURE -d DISTRIBUTION [options]", doc)
	fs := c.Flags
	svcFile := fs.StringP("services", "s", "", "`FILE` services model (required)")
	infraFile := fs.StringP("infrastructure", "i", "", "`FILE` infrastructure model (required)")
	distFile := fs.StringP("distribution", "d", "", "`FILE` distribution model (required)")
	var format string
	cli.ChoiceVarP(fs, &format, "format", "f", "dot", "`FMT` output format: dot or svg", "dot", "svg")
	out := fs.StringP("output", "o", "", "write to `FILE` (atomically) instead of stdout")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	return c.Exit(visualize(*svcFile, *infraFile, *distFile, format, *out, stdout), stderr)
}

func visualize(svcFile, infraFile, distFile, format, out string, stdout io.Writer) error {
	switch {
	case svcFile == "":
		return cli.Usagef("-s/--services is required")
	case infraFile == "":
		return cli.Usagef("-i/--infrastructure is required")
	case distFile == "":
		return cli.Usagef("-d/--distribution is required")
	}
	text, err := render(svcFile, infraFile, distFile, format)
	if err != nil {
		return err
	}
	if out != "" {
		return model.WriteFileAtomic(out, []byte(text), 0o644)
	}
	_, err = io.WriteString(stdout, text)
	return err
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
	if err := dist.Validate(distFile, svcs, infra); err != nil {
		return "", err
	}
	d := visual.Build(svcs, infra.Names(), dist, nil)
	if format == "svg" {
		return d.SVG(), nil
	}
	return d.DOT(), nil
}
