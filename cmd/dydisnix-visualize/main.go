// Command dydisnix-visualize draws a deployment architecture: targets as
// boxes holding a box per container, the services placed on them inside, solid arrows for dependsOn and
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
	"github.com/dydisnix/dydisnix/visualize"
)

const doc = `Prints the deployment architecture: every target of the infrastructure as a
box holding a box per container (the mapping's container, else the service's
type, as Disnix deploys it) with the services the distribution places on it
inside, a solid arrow per dependsOn and a dashed arrow per connectsTo (from
each instance to every instance of the service it uses). Services without a target are drawn apart,
marked "unplaced". Model files are .json, .yaml/.yml or .nix.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-visualize", "-s SERVICES -i INFRASTRUCTURE -d DISTRIBUTION [options]", doc)
	fs := c.Flags
	var m cli.Models
	m.AddFlags(fs, required)
	var out cli.Output
	out.AddFlags(fs, "the picture", "dot", "svg")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := out.Check(); err != nil {
		return c.Exit(err, stderr)
	}
	return c.Exit(draw(m, out, stdout), stderr)
}

// required are the models visualize needs.
const required = cli.ServicesFlag | cli.InfrastructureFlag | cli.DistributionFlag

func draw(m cli.Models, out cli.Output, stdout io.Writer) error {
	if err := m.Require(required); err != nil {
		return err
	}
	text, err := render(m.Services, m.Infrastructure, m.Distribution, out.Format)
	if err != nil {
		return err
	}
	return out.Write([]byte(text), stdout, func(file string, data []byte) error { return model.WriteFileAtomic(file, data, 0o644) })
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
	// Each machine holds a box per container: a mapping without one runs
	// in the container of its service's type, as Disnix deploys it.
	d := visual.Build(svcs, infra.Names(), visualize.WithContainers(dist, svcs), nil)
	if format == "svg" {
		return d.SVG(), nil
	}
	return d.DOT(), nil
}
