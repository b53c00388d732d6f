// Command dydisnix-visualize-services draws a services model as a
// Graphviz DOT diagram, as the original Dynamic Disnix tool of that name:
// services as nodes, dependsOn as solid and connectsTo as dashed arrows,
// optionally one group with its context and its subgroups collapsed; in
// batch mode one diagram per group, rendered with dot when -f is given.
//
//	dydisnix-visualize-services -s services.nix [--group G] [--group-subservices]
//	dydisnix-visualize-services --batch -s services.nix --output-dir out -f svg
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

const doc = `Creates a visualization of the services model, in which services are nodes
and inter-dependencies arrows (dependsOn solid, connectsTo dashed), in DOT
format: render it with graphviz's dot. Without --batch the diagram is printed;
with --batch, OUTPUT-DIR/GROUP/diagram.dot is written for the root and for
every group a service has, and -f FMT renders each with dot -TFMT -O into
diagram.dot.FMT. Model files are .json, .yaml/.yml, .nix or, with --xml, the
original's XML.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command's flags.
type options struct {
	models           cli.Models
	xml, batch       bool
	group, outputDir string
	format           string
	groupSubservices bool
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-visualize-services", "-s SERVICES [--group G] [--group-subservices] [options]\n--batch -s SERVICES [--output-dir DIR] [-f FMT] [options]", doc)
	var o options
	fs := c.Flags
	o.models.AddFlags(fs, cli.ServicesFlag)
	fs.BoolVar(&o.xml, "xml", false, "the services model is the original's XML (dydisnix-xml's output), not Nix, JSON or YAML")
	fs.StringVar(&o.group, "group", "", "`G` only the services of group G and its subgroups, with the services they use and that use them")
	fs.BoolVar(&o.groupSubservices, "group-subservices", false, "draw each subgroup of the group as one dashed node")
	fs.BoolVar(&o.batch, "batch", false, "write a diagram per group to --output-dir instead of printing one")
	fs.StringVar(&o.outputDir, "output-dir", ".", "`DIR` directory of the batch mode's diagrams")
	fs.StringVarP(&o.format, "format", "f", "", "`FMT` batch mode: also render each diagram with dot in this image format (svg, png, ...)")
	o.models.AddFlags(fs, cli.ExtraParamsFlag)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(visualizeServices(ctx, o, stdout, stderr), stderr)
}

func visualizeServices(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if err := o.models.Require(cli.ServicesFlag); err != nil {
		return err
	}
	svcs, err := files.LoadServices(ctx, o.models.Services, o.xml, model.NixOptions{ExtraParams: o.models.ExtraParams})
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-visualize-services", svcs.Validate(o.models.Services), stderr)
	if o.batch {
		return files.Write(ctx, o.outputDir, visualize.Diagrams(svcs), o.format)
	}
	_, err = io.WriteString(stdout, visualize.ServicesDOT(svcs, o.group, o.groupSubservices))
	return err
}
