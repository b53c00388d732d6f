// Command dydisnix-generate-services-docs writes the whole documentation
// catalog of a services model, as the original Dynamic Disnix script of
// that name: the diagrams of dydisnix-visualize-services --batch (rendered
// with graphviz's dot when -f is given) and the HTML pages of
// dydisnix-document-services --batch, one per group, in one directory.
//
//	dydisnix-generate-services-docs -s services.nix --docs docs.nix -f svg --output-dir out
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

const doc = `Generates the documentation catalog of a services model in OUTPUT-DIR: for
the root and for every group a service has, GROUP/diagram.dot (with -f FMT
also GROUP/diagram.dot.FMT, rendered with graphviz's dot) and GROUP/index.html,
which lists the group's services and links its subgroups, and style.css.
Model files are .json, .yaml/.yml, .nix or, with --xml, the original's XML.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command's flags.
type options struct {
	models                  cli.Models
	docs, outputDir, format string
	xml                     bool
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-generate-services-docs", "-s SERVICES [--docs DOCS] [-f FMT] [--output-dir DIR] [options]", doc)
	var o options
	fs := c.Flags
	o.models.AddFlags(fs, cli.ServicesFlag)
	fs.StringVar(&o.docs, "docs", "", "`FILE` documentation configuration: {groups, fields, descriptions}")
	fs.BoolVar(&o.xml, "xml", false, "the services model and --docs are the original's XML (dydisnix-xml's output)")
	fs.StringVar(&o.outputDir, "output-dir", ".", "`DIR` directory of the catalog")
	fs.StringVarP(&o.format, "format", "f", "", "`FMT` render the diagrams with dot in this image format (svg, png, ...) and show them on the pages")
	// The original's help names the format flag --image-format.
	fs.StringVar(&o.format, "image-format", "", "`FMT` the same as --format")
	fs.MarkHidden("image-format")
	o.models.AddFlags(fs, cli.ExtraParamsFlag)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(generate(ctx, o, stderr), stderr)
}

func generate(ctx context.Context, o options, stderr io.Writer) error {
	if err := o.models.Require(cli.ServicesFlag); err != nil {
		return err
	}
	opts := model.NixOptions{ExtraParams: o.models.ExtraParams}
	svcs, err := files.LoadServices(ctx, o.models.Services, o.xml, opts)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-generate-services-docs", svcs.Validate(o.models.Services), stderr)
	var docs *visualize.Docs
	if o.docs != "" {
		if docs, err = files.LoadDocs(ctx, o.docs, o.xml, opts); err != nil {
			return err
		}
	}
	if err := files.Write(ctx, o.outputDir, visualize.Diagrams(svcs), o.format); err != nil {
		return err
	}
	return files.Write(ctx, o.outputDir, visualize.Catalog(svcs, docs, o.format), "")
}
