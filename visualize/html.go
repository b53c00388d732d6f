package visualize

import (
	"fmt"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// Docs is the documentation configuration (--docs): descriptions of the
// groups by full path, the columns of the services table and their
// headers.
type Docs struct {
	// Groups maps a full group path to its description.
	Groups map[string]string
	// Fields are the columns after Name (default description, type).
	Fields []string
	// Descriptions maps a field to its column header (default the field).
	Descriptions map[string]string
}

// DocsFromValue reads a documentation configuration from its JSON-like
// value ({groups, fields, descriptions}, each optional); file names it in
// errors.
func DocsFromValue(v any, file string) (*Docs, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: the docs configuration must be an attribute set {groups, fields, descriptions}, not %s", file, model.TypeName(v))
	}
	d := &Docs{Groups: map[string]string{}, Descriptions: map[string]string{}}
	for _, k := range model.SortedKeys(top) {
		switch k {
		case "groups", "descriptions":
			m, ok := top[k].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s: expected an attribute set of strings, not %s", file, k, model.TypeName(top[k]))
			}
			into := d.Groups
			if k == "descriptions" {
				into = d.Descriptions
			}
			for name, text := range m {
				s, ok := model.ScalarText(text)
				if !ok {
					return nil, fmt.Errorf("%s: %s.%s: expected a string, not %s", file, k, name, model.TypeName(text))
				}
				into[name] = s
			}
		case "fields":
			l, ok := top[k].([]any)
			if !ok {
				return nil, fmt.Errorf("%s: fields: expected a list of strings, not %s", file, model.TypeName(top[k]))
			}
			for i, f := range l {
				s, ok := f.(string)
				if !ok {
					return nil, fmt.Errorf("%s: fields[%d]: expected a string, not %s", file, i, model.TypeName(f))
				}
				d.Fields = append(d.Fields, s)
			}
		default:
			return nil, fmt.Errorf("%s: unknown attribute %q: expected groups, fields or descriptions", file, k)
		}
	}
	return d, nil
}

// ServicesHTML is the page dydisnix-document-services prints: the services
// of group (the subgroups collapsed into group nodes when subservices is
// set) as a table, and the group nodes as a table of links. As in the
// original, the page's title is the root's whatever group is.
func ServicesHTML(svcs model.Services, docs *Docs, group string, subservices bool) string {
	g := members(svcs, group)
	if subservices {
		g = collapse(g, group)
	}
	return page(g, docs, "", "", "")
}

// page writes the catalog page of group: its title and heading (the
// group's description, or its path), the diagram image when imageFormat
// is set, the services table and the groups table. pageGroup is the group
// the page describes, linkGroup the group its subgroup links are below.
func page(g graph, docs *Docs, pageGroup, linkGroup, imageFormat string) string {
	var b strings.Builder
	heading := pageGroup
	if docs != nil && pageGroup != "" {
		if d, ok := docs.Groups[pageGroup]; ok {
			heading = d
		}
	}
	b.WriteString("<!DOCTYPE html>\n\n<html>\n    <head>\n        <title>Functional architecture documentation")
	if pageGroup != "" {
		b.WriteString(" for group: " + heading)
	}
	b.WriteString("</title>\n")
	fmt.Fprintf(&b, "        <link rel=\"stylesheet\" type=\"text/css\" href=\"%s/style.css\">\n", rootPath(pageGroup))
	b.WriteString("    </head>\n    <body>\n")
	if pageGroup != "" {
		b.WriteString("        <h1>" + heading + "</h1>\n")
	}
	if imageFormat != "" {
		fmt.Fprintf(&b, "        <p>\n            <img src=\"diagram.dot.%s\" alt=\"Architecture diagram\">\n        </p>\n", imageFormat)
	}
	servicesTable(&b, g, docs)
	groupsTable(&b, g, docs, linkGroup)
	b.WriteString("    </body>\n</html>\n")
	return b.String()
}

// rootPath is the catalog's root seen from a group's page: "." for the
// root, ".." per path component otherwise.
func rootPath(group string) string {
	n := len(splitGroup(group))
	if n == 0 {
		return "."
	}
	return strings.TrimSuffix(strings.Repeat("../", n), "/")
}

// servicesTable writes the table of the page's services (group nodes
// left out), nothing when there are none. Custom headers are written
// without line breaks between them, as the original does.
func servicesTable(b *strings.Builder, g graph, docs *Docs) {
	first := true
	for _, name := range g.names() {
		n := g[name]
		if n.groupNode {
			continue
		}
		if first {
			b.WriteString("        <h2>Services</h2>\n        <table>\n            <tr>\n                <th>Name</th>\n")
			if docs == nil || len(docs.Fields) == 0 {
				b.WriteString("                <th>Description</th>\n                <th>Type</th>\n")
			} else {
				for _, f := range docs.Fields {
					h, ok := docs.Descriptions[f]
					if !ok {
						h = f
					}
					b.WriteString("                <th>" + h + "</th>")
				}
			}
			b.WriteString("            </tr>\n")
			first = false
		}
		b.WriteString("            <tr>\n                <td>" + n.name + "</td>\n")
		fields := []string{"description", "type"}
		if docs != nil && len(docs.Fields) > 0 {
			fields = docs.Fields
		}
		for _, f := range fields {
			b.WriteString("                <td>" + cell(n, f) + "</td>\n")
		}
		b.WriteString("            </tr>\n")
	}
	if !first {
		b.WriteString("        </table>\n")
	}
}

// groupsTable writes the table of the page's group nodes, each a link to
// its page with its description, nothing when there are none.
func groupsTable(b *strings.Builder, g graph, docs *Docs, group string) {
	first := true
	for _, name := range g.names() {
		n := g[name]
		if !n.groupNode {
			continue
		}
		if first {
			b.WriteString("        <h2>Groups</h2>\n        <table>\n            <tr>\n                <th>Name</th>\n                <th>Description</th>\n            </tr>\n")
			first = false
		}
		full := name
		if group != "" {
			full = group + "/" + name
		}
		desc := ""
		if docs != nil {
			desc = docs.Groups[full]
		}
		fmt.Fprintf(b, "            <tr>\n                <td><a href=\"%s/index.html\">%s</a></td>\n                <td>%s</td>\n            </tr>\n", name, name, desc)
	}
	if !first {
		b.WriteString("        </table>\n")
	}
}

// cell is a service's value for a column, as the original shows it: name,
// type, group, providesContainer or any scalar property; "" when absent
// or not a scalar. Values are written as they are (the original's users
// may put markup in their descriptions).
func cell(n *node, field string) string {
	switch field {
	case "name":
		return n.name
	case "type":
		return n.typ
	case "group":
		return n.group
	case "dependsOn", "connectsTo", "providesContainers":
		return ""
	}
	if n.svc == nil {
		return ""
	}
	s, _ := model.ScalarText(n.svc.Attrs[field])
	return s
}
