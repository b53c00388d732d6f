package visualize

import (
	_ "embed"
	"path"

	"github.com/dydisnix/dydisnix/model"
)

// Page is one file of a batch: its path relative to the output directory
// (GROUP/diagram.dot, GROUP/index.html, style.css) and its content.
type Page struct {
	// Group is the group the page describes ("" for the root and for the
	// style sheet).
	Group string
	// Path is the file's path below the output directory, with "/".
	Path string
	// Content is the file's text.
	Content string
}

// DiagramFile is the name of a group's diagram; graphviz's `dot -Tfmt -O`
// renders it to DiagramFile + "." + fmt, the name a catalog page shows.
const DiagramFile = "diagram.dot"

// Diagrams are the batch diagrams of dydisnix-visualize-services --batch:
// one GROUP/diagram.dot for the root and for every group some service has
// (sorted), each with its context and its subgroups collapsed.
func Diagrams(svcs model.Services) []Page {
	var out []Page
	for _, group := range append([]string{""}, Groups(svcs)...) {
		g := collapse(withContext(svcs, members(svcs, group)), group)
		out = append(out, Page{Group: group, Path: path.Join(group, DiagramFile), Content: diagram(g)})
	}
	return out
}

// Catalog is the HTML catalog of dydisnix-document-services --batch: one
// GROUP/index.html for the root and for every group some service has
// (sorted), each listing the group's services and linking its subgroups'
// pages, showing the diagram rendered in imageFormat when it is not "",
// and the style sheet style.css.
func Catalog(svcs model.Services, docs *Docs, imageFormat string) []Page {
	var out []Page
	for _, group := range append([]string{""}, Groups(svcs)...) {
		g := collapse(members(svcs, group), group)
		out = append(out, Page{Group: group, Path: path.Join(group, "index.html"), Content: page(g, docs, group, group, imageFormat)})
	}
	return append(out, Page{Path: "style.css", Content: styleCSS})
}

// styleCSS is the catalog's style sheet.
//
//go:embed style.css
var styleCSS string
