package visualize

import (
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// parsedPage is what a catalog page shows, read back with an HTML parser.
type parsedPage struct {
	title, css, h1, img string
	tables              [][][]string // tables → rows → cells (th or td text)
	links               []string
}

func parsePage(t *testing.T, text string) parsedPage {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var p parsedPage
	var walk func(n *html.Node)
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	var textOf func(n *html.Node) string
	textOf = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(textOf(c))
		}
		return b.String()
	}
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "title":
				p.title = textOf(n)
			case "link":
				p.css = attr(n, "href")
			case "h1":
				p.h1 = textOf(n)
			case "img":
				p.img = attr(n, "src")
			case "a":
				p.links = append(p.links, attr(n, "href"))
			case "table":
				p.tables = append(p.tables, nil)
			case "tr":
				p.tables[len(p.tables)-1] = append(p.tables[len(p.tables)-1], nil)
			case "th", "td":
				tb := p.tables[len(p.tables)-1]
				tb[len(tb)-1] = append(tb[len(tb)-1], strings.TrimSpace(textOf(n)))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return p
}

// TestCatalog checks the batch catalog's pages structurally: one per
// group and the root, the style sheet's relative path, the heading from
// the docs configuration, the diagram image, the services table with the
// configured columns and the subgroups' links with their descriptions.
func TestCatalog(t *testing.T) {
	svcs := portalServices(t)
	docs := &Docs{
		Groups:       map[string]string{"services": "Services", "services/logging": "Logging"},
		Fields:       []string{"type", "group", "nope"},
		Descriptions: map[string]string{"type": "Type"},
	}
	pages := Catalog(svcs, docs, "svg")
	byPath := map[string]string{}
	var paths []string
	for _, p := range pages {
		byPath[p.Path] = p.Content
		paths = append(paths, p.Path)
	}
	wantPaths := []string{"index.html", "services/index.html", "services/logging/index.html", "services/reporting/index.html", "style.css"}
	if !reflect.DeepEqual(paths, wantPaths) {
		t.Fatalf("pages %q, want %q", paths, wantPaths)
	}
	if !strings.Contains(byPath["style.css"], "table") {
		t.Errorf("style.css: %q", byPath["style.css"])
	}
	header := []string{"Name", "Type", "group", "nope"}
	for _, c := range []struct {
		path                string
		title, css, h1, img string
		tables              [][][]string
		links               []string
	}{
		{"index.html", "Functional architecture documentation", "./style.css", "", "diagram.dot.svg",
			[][][]string{
				{header, {"portal", "tomcat-webapplication", "", ""}, {"portaldb", "tomcat-webapplication", "", ""}},
				{{"Name", "Description"}, {"services", "Services"}},
			},
			[]string{"services/index.html"}},
		{"services/index.html", "Functional architecture documentation for group: Services", "../style.css", "Services", "diagram.dot.svg",
			[][][]string{
				{header, {"errordb", "postgresql-database", "services", ""}},
				{{"Name", "Description"}, {"logging", "Logging"}, {"reporting", ""}},
			},
			[]string{"logging/index.html", "reporting/index.html"}},
		{"services/reporting/index.html", "Functional architecture documentation for group: services/reporting", "../../style.css", "services/reporting", "diagram.dot.svg",
			[][][]string{
				{header, {"reportingapi", "tomcat-webapplication", "services/reporting", ""}, {"reportingdb", "postgresql-database", "services/reporting", ""}},
			},
			nil},
	} {
		t.Run(c.path, func(t *testing.T) {
			p := parsePage(t, byPath[c.path])
			want := parsedPage{title: c.title, css: c.css, h1: c.h1, img: c.img, tables: c.tables, links: c.links}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got  %+v\nwant %+v\n%s", p, want, byPath[c.path])
			}
		})
	}
	// Without an image format there is no image; without docs, the
	// default columns and empty group descriptions.
	p := parsePage(t, Catalog(svcs, nil, "")[0].Content)
	if p.img != "" || !reflect.DeepEqual(p.tables[0][0], []string{"Name", "Description", "Type"}) || !reflect.DeepEqual(p.tables[1][1], []string{"services", ""}) {
		t.Errorf("root page without docs and format: %+v", p)
	}
}

// TestSingleGroupPage: --group lists the group's services, --group-
// subservices lists the subgroups as links; the title stays the root's.
func TestSingleGroupPage(t *testing.T) {
	svcs := portalServices(t)
	p := parsePage(t, ServicesHTML(svcs, nil, "services", true))
	want := parsedPage{title: "Functional architecture documentation", css: "./style.css",
		tables: [][][]string{
			{{"Name", "Description", "Type"}, {"errordb", "Error database backend", "postgresql-database"}},
			{{"Name", "Description"}, {"logging", ""}, {"reporting", ""}},
		},
		links: []string{"logging/index.html", "reporting/index.html"}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
}

func TestDocsFromValue(t *testing.T) {
	for _, c := range []struct {
		name string
		v    any
		want *Docs
		err  string
	}{
		{"full", map[string]any{"groups": map[string]any{"a": "A"}, "fields": []any{"type"}, "descriptions": map[string]any{"type": "T"}},
			&Docs{Groups: map[string]string{"a": "A"}, Fields: []string{"type"}, Descriptions: map[string]string{"type": "T"}}, ""},
		{"empty", map[string]any{}, &Docs{Groups: map[string]string{}, Descriptions: map[string]string{}}, ""},
		{"not a set", []any{}, nil, "docs.nix: the docs configuration must be an attribute set"},
		{"fields not a list", map[string]any{"fields": "type"}, nil, "docs.nix: fields: expected a list of strings"},
		{"field not a string", map[string]any{"fields": []any{true}}, nil, "docs.nix: fields[0]: expected a string"},
		{"group not a string", map[string]any{"groups": map[string]any{"a": []any{}}}, nil, "docs.nix: groups.a: expected a string"},
		{"unknown key", map[string]any{"field": []any{}}, nil, `docs.nix: unknown attribute "field"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DocsFromValue(c.v, "docs.nix")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
