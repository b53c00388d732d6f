// Command dydisnix-document-services writes an HTML catalog of a services
// model, as the original Dynamic Disnix tool of that name: a table of the
// services (by default their description and type) and a table of
// subgroups; in batch mode one page per group with the style sheet.
//
//	dydisnix-document-services -s services.nix [--docs docs.nix] [--group G] [--group-subservices]
//	dydisnix-document-services --batch -s services.nix --docs docs.nix --output-dir out -f svg
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

const doc = `Creates an overview of the services in HTML: a table of the services with
their description and type (or the --docs configuration's fields) and a
table of the subgroups. Without --batch the page is printed; with --batch,
OUTPUT-DIR/GROUP/index.html is written for the root and for every group a
service has, with OUTPUT-DIR/style.css, and -f FMT shows each group's
diagram.dot.FMT (made by dydisnix-visualize-services --batch -f FMT; see
dydisnix-generate-services-docs). Model files are .json, .yaml/.yml, .nix or,
with --xml, the original's XML.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command's flags.
type options struct {
	models                  cli.Models
	docs, group, outputDir  string
	format                  string
	xml, batch, subservices bool
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-document-services", "-s SERVICES [--docs DOCS] [--group G] [--group-subservices] [options]\n--batch -s SERVICES [--docs DOCS] [--output-dir DIR] [-f FMT] [options]", doc)
	var o options
	fs := c.Flags
	o.models.AddFlags(fs, cli.ServicesFlag)
	fs.StringVar(&o.docs, "docs", "", "`FILE` documentation configuration: {groups, fields, descriptions}")
	fs.BoolVar(&o.xml, "xml", false, "the services model and --docs are the original's XML (dydisnix-xml's output)")
	fs.StringVar(&o.group, "group", "", "`G` only the services of group G and its subgroups")
	fs.BoolVar(&o.subservices, "group-subservices", false, "list each subgroup of the group as one group")
	fs.BoolVar(&o.batch, "batch", false, "write a page per group to --output-dir instead of printing one")
	fs.StringVar(&o.outputDir, "output-dir", ".", "`DIR` directory of the batch mode's pages")
	fs.StringVarP(&o.format, "format", "f", "", "`FMT` batch mode: show each group's diagram.dot.FMT (svg, png, ...)")
	o.models.AddFlags(fs, cli.ExtraParamsFlag)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(document(ctx, o, stdout, stderr), stderr)
}

func document(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if err := o.models.Require(cli.ServicesFlag); err != nil {
		return err
	}
	opts := model.NixOptions{ExtraParams: o.models.ExtraParams}
	svcs, err := files.LoadServices(ctx, o.models.Services, o.xml, opts)
	if err != nil {
		return err
	}
	cli.Warn("dydisnix-document-services", svcs.Validate(o.models.Services), stderr)
	var docs *visualize.Docs
	if o.docs != "" {
		if docs, err = files.LoadDocs(ctx, o.docs, o.xml, opts); err != nil {
			return err
		}
	}
	if o.batch {
		return files.Write(ctx, o.outputDir, visualize.Catalog(svcs, docs, o.format), "")
	}
	_, err = io.WriteString(stdout, visualize.ServicesHTML(svcs, docs, o.group, o.subservices))
	return err
}
