// Command dydisnix-visualize-infra draws an infrastructure model as a
// Graphviz DOT diagram, as the original Dynamic Disnix tool of that name:
// every machine a box holding a box of its containers.
//
//	dydisnix-visualize-infra -i infrastructure.nix | dot -Tsvg > infra.svg
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/visualize"
	"github.com/dydisnix/dydisnix/visualize/files"
)

const doc = `Creates a visualization of the machines of the infrastructure model and the
containers they host, in DOT format: render it with graphviz's dot. Model
files are .json, .yaml/.yml, .nix or, with --xml, Disnix's infrastructure XML.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-visualize-infra", "-i INFRASTRUCTURE [options]", doc)
	var m cli.Models
	var xml bool
	m.AddFlags(c.Flags, cli.InfrastructureFlag)
	c.Flags.BoolVar(&xml, "xml", false, "the infrastructure model is Disnix's XML, not Nix, JSON or YAML")
	m.AddFlags(c.Flags, cli.ExtraParamsFlag)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(visualizeInfra(ctx, m, xml, stdout), stderr)
}

func visualizeInfra(ctx context.Context, m cli.Models, xml bool, stdout io.Writer) error {
	if err := m.Require(cli.InfrastructureFlag); err != nil {
		return err
	}
	infra, err := files.LoadInfrastructure(ctx, m.Infrastructure, xml, model.NixOptions{ExtraParams: m.ExtraParams})
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, visualize.InfraDOT(infra))
	return err
}
