package visualize

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// The original tools' --xml inputs (dydisnix.md §1.13) are read here into
// the JSON-like values the model loaders take: the services XML of
// dydisnix-xml -s, Disnix's infrastructure XML and the docs XML of
// dydisnix-xml --docs.

// xmlNode is one element of an XML document.
type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []xmlNode  `xml:",any"`
}

// attr is the value of an attribute, "" when absent.
func (n *xmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// parseXML parses a document and checks its root element's name.
func parseXML(data []byte, file, root string) (*xmlNode, error) {
	var n xmlNode
	if err := xml.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("%s: not an XML document: %w", file, err)
	}
	if n.XMLName.Local != root {
		return nil, fmt.Errorf("%s: root element <%s>, expected <%s>", file, n.XMLName.Local, root)
	}
	return &n, nil
}

// value reads a value in libnixxml's verbose form: a type attribute
// (string, int, float, bool, path, list, attrs) or, without one, an
// attribute set when the element has children named by a name attribute,
// a list when it has other children, else its text.
func value(n *xmlNode, file, at string) (any, error) {
	typ := n.attr("type")
	if typ == "" {
		switch {
		case len(n.Nodes) > 0 && n.Nodes[0].attr("name") != "":
			typ = "attrs"
		case len(n.Nodes) > 0:
			typ = "list"
		default:
			typ = "string"
		}
	}
	switch typ {
	case "string", "path":
		return n.Text, nil
	case "int", "float":
		t := strings.TrimSpace(n.Text)
		var num json.Number
		if err := json.Unmarshal([]byte(t), &num); err != nil {
			return nil, fmt.Errorf("%s: %s: %q is not a number", file, at, t)
		}
		return num, nil
	case "bool":
		switch strings.TrimSpace(n.Text) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%s: %s: %q is not true or false", file, at, n.Text)
	case "list":
		out := []any{}
		for i := range n.Nodes {
			v, err := value(&n.Nodes[i], file, fmt.Sprintf("%s[%d]", at, i))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case "attrs":
		return attrs(n, file, at)
	}
	return nil, fmt.Errorf("%s: %s: unknown type %q: expected string, int, float, bool, path, list or attrs", file, at, typ)
}

// attrs reads the children of n, each named by its name attribute, as an
// attribute set.
func attrs(n *xmlNode, file, at string) (map[string]any, error) {
	out := map[string]any{}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		name := c.attr("name")
		if name == "" {
			return nil, fmt.Errorf("%s: %s: <%s> without a name attribute", file, at, c.XMLName.Local)
		}
		v, err := value(c, file, at+"."+name)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

// ServicesFromXML reads the original's services XML: <services> of
// <service name> elements, each holding <property name [type]> elements;
// dependsOn and connectsTo hold <dependency> elements.
func ServicesFromXML(data []byte, file string) (model.Services, error) {
	root, err := parseXML(data, file, "services")
	if err != nil {
		return nil, err
	}
	v := map[string]any{}
	for i := range root.Nodes {
		s := &root.Nodes[i]
		name := s.attr("name")
		if s.XMLName.Local != "service" || name == "" {
			return nil, fmt.Errorf("%s: <%s> in <services>: expected <service name=...>", file, s.XMLName.Local)
		}
		props := map[string]any{}
		for j := range s.Nodes {
			p := &s.Nodes[j]
			key := p.attr("name")
			if key == "" {
				key = p.XMLName.Local
			}
			if key == model.AttrDependsOn || key == model.AttrConnectsTo {
				deps := []any{}
				for _, d := range p.Nodes {
					deps = append(deps, strings.TrimSpace(d.Text))
				}
				props[key] = deps
				continue
			}
			pv, err := value(p, file, name+"."+key)
			if err != nil {
				return nil, err
			}
			props[key] = pv
		}
		if _, ok := props[model.AttrName]; !ok {
			props[model.AttrName] = name
		}
		v[name] = props
	}
	return model.ServicesFromValue(v, file)
}

// InfrastructureFromXML reads Disnix's infrastructure XML: <infrastructure>
// of <target name> elements holding <properties> (property elements),
// <containers> (<container name> elements of properties) and scalar
// elements such as <system>.
func InfrastructureFromXML(data []byte, file string) (model.Infrastructure, error) {
	root, err := parseXML(data, file, "infrastructure")
	if err != nil {
		return nil, err
	}
	v := map[string]any{}
	for i := range root.Nodes {
		t := &root.Nodes[i]
		name := t.attr("name")
		if t.XMLName.Local != "target" || name == "" {
			return nil, fmt.Errorf("%s: <%s> in <infrastructure>: expected <target name=...>", file, t.XMLName.Local)
		}
		target := map[string]any{}
		for j := range t.Nodes {
			c := &t.Nodes[j]
			key := c.XMLName.Local
			var cv any
			var err error
			switch key {
			case "properties", "containers":
				cv, err = attrs(c, file, name+"."+key)
			default:
				cv, err = value(c, file, name+"."+key)
			}
			if err != nil {
				return nil, err
			}
			target[key] = cv
		}
		v[name] = target
	}
	return model.InfrastructureFromValue(v, file)
}

// DocsFromXML reads the docs XML: <docs-config> with <groups> (<group
// name>description</group>), <fields> (<field>) and <descriptions>
// (<FIELD>header</FIELD>).
func DocsFromXML(data []byte, file string) (*Docs, error) {
	root, err := parseXML(data, file, "docs-config")
	if err != nil {
		return nil, err
	}
	d := &Docs{Groups: map[string]string{}, Descriptions: map[string]string{}}
	for _, part := range root.Nodes {
		switch part.XMLName.Local {
		case "groups":
			for _, g := range part.Nodes {
				d.Groups[g.attr("name")] = g.Text
			}
		case "fields":
			for _, f := range part.Nodes {
				d.Fields = append(d.Fields, strings.TrimSpace(f.Text))
			}
		case "descriptions":
			for _, f := range part.Nodes {
				d.Descriptions[f.XMLName.Local] = f.Text
			}
		default:
			return nil, fmt.Errorf("%s: <%s> in <docs-config>: expected groups, fields or descriptions", file, part.XMLName.Local)
		}
	}
	return d, nil
}
