package model

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// LoadXMLValue reads a model file in the XML form the original C tools
// read with --xml (dydisnix.md §1.13) and returns its JSON-like value, the
// same value the .json form of the model decodes to. DecodeXML says which
// models are read.
func LoadXMLValue(file string) (any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return DecodeXML(data, file)
}

// xmlNode is an XML element with its attributes, children and text.
type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xmlNode  `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *xmlNode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (n *xmlNode) text() string { return strings.TrimSpace(n.Text) }

// DecodeXML decodes a model in the original's XML; the root element says
// which: <services> (services.xsl: typed <property> elements, dependsOn
// and connectsTo as <dependency> lists), <infrastructure> (Disnix's
// infrastructure.xsl), <distribution> (§1.4(c): <mapping> elements with
// <target> and an optional <container>), <resources> (the ID resources
// model; <step> is read too), <ids> (the ids file, §1.9) or
// <portConfiguration> (the legacy ports file, ports.xsl). file names
// the source in errors.
func DecodeXML(data []byte, file string) (any, error) {
	var root xmlNode
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return nil, fmt.Errorf("%s: not an XML model: %w", file, err)
	}
	var v any
	var err error
	switch root.XMLName.Local {
	case "services":
		v, err = servicesXML(&root)
	case "infrastructure":
		v, err = infrastructureXML(&root)
	case "distribution":
		v, err = distributionXML(&root)
	case "resources":
		v, err = resourcesXML(&root)
	case "ids":
		v, err = idsXML(&root)
	case "portConfiguration":
		v = map[string]any{"portConfiguration": elementTree(&root)}
	default:
		err = fmt.Errorf("unknown root element <%s>: expected services, infrastructure, distribution, resources, ids or portConfiguration", root.XMLName.Local)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// named returns the name attribute of every child called elem, in a map
// to what value makes of the child; any other child is an error.
func named(n *xmlNode, elem string, value func(*xmlNode) (any, error)) (map[string]any, error) {
	out := map[string]any{}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		name, ok := c.attr("name")
		if c.XMLName.Local != elem || !ok {
			return nil, fmt.Errorf("<%s>: expected <%s name=\"...\">, got <%s>", n.XMLName.Local, elem, c.XMLName.Local)
		}
		v, err := value(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// typed reads a typed value: type string, int, float, bool, list (<elem
// type> children) or attrs (<property name type> children); no type is a
// string, as the stylesheets write names.
func typed(n *xmlNode) (any, error) {
	t, _ := n.attr("type")
	switch t {
	case "", "string", "path":
		return n.text(), nil
	case "int", "float":
		num := json.Number(n.text())
		if !validNumber(string(num)) || (t == "int" && !IsInt(num)) {
			return nil, fmt.Errorf("expected %s, got %q", t, n.text())
		}
		return num, nil
	case "bool":
		b, err := strconv.ParseBool(n.text())
		if err != nil {
			return nil, fmt.Errorf("expected true or false, got %q", n.text())
		}
		return b, nil
	case "list":
		out := make([]any, 0, len(n.Nodes))
		for i := range n.Nodes {
			v, err := typed(&n.Nodes[i])
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, v)
		}
		return out, nil
	case "attrs":
		return named(n, "property", typed)
	case "null":
		return nil, nil
	}
	return nil, fmt.Errorf("unknown type %q", t)
}

func servicesXML(root *xmlNode) (any, error) {
	return named(root, "service", func(s *xmlNode) (any, error) {
		name, _ := s.attr("name")
		svc, err := named(s, "property", func(p *xmlNode) (any, error) {
			if _, ok := p.attr("type"); ok {
				return typed(p)
			}
			if name, _ := p.attr("name"); name != AttrDependsOn && name != AttrConnectsTo {
				return p.text(), nil
			}
			deps := []any{}
			for _, d := range p.Nodes { // dependsOn, connectsTo
				deps = append(deps, d.text())
			}
			return deps, nil
		})
		if err == nil {
			if _, ok := svc[AttrName]; !ok {
				svc[AttrName] = name
			}
		}
		return svc, err
	})
}

func infrastructureXML(root *xmlNode) (any, error) {
	return named(root, "target", func(t *xmlNode) (any, error) {
		out := map[string]any{}
		for i := range t.Nodes {
			c := &t.Nodes[i]
			var err error
			switch k := c.XMLName.Local; k {
			case "properties":
				out[k], err = named(c, "property", typed)
			case "containers":
				out[k], err = named(c, "container", func(n *xmlNode) (any, error) { return named(n, "property", typed) })
			case "numOfCores":
				num := json.Number(c.text())
				if !IsInt(num) {
					err = fmt.Errorf("numOfCores: expected an int, got %q", c.text())
				}
				out[k] = num
			default: // system, clientInterface, targetProperty, ...
				out[k] = c.text()
			}
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

func distributionXML(root *xmlNode) (any, error) {
	return named(root, "service", func(s *xmlNode) (any, error) {
		ms := []any{}
		for _, m := range s.Nodes {
			if m.XMLName.Local != "mapping" {
				return nil, fmt.Errorf("expected <mapping>, got <%s>", m.XMLName.Local)
			}
			var target, container string
			var hasContainer bool
			for _, c := range m.Nodes { // other children are ignored, as the original's parser does
				switch c.XMLName.Local {
				case "target":
					target = c.text()
				case "container":
					container, hasContainer = c.text(), true
				}
			}
			if target == "" {
				return nil, fmt.Errorf("<mapping> without a <target>")
			}
			if hasContainer {
				ms = append(ms, map[string]any{"target": target, "container": container})
			} else {
				ms = append(ms, target)
			}
		}
		return ms, nil
	})
}

func resourcesXML(root *xmlNode) (any, error) {
	return named(root, "resource", func(r *xmlNode) (any, error) {
		out := map[string]any{}
		for _, c := range r.Nodes {
			switch k := c.XMLName.Local; k {
			case "min", "max", "step":
				if c.text() != "" { // an empty value is a missing one
					out[k] = json.Number(c.text())
				}
			case "scope":
				out[k] = c.text()
			default:
				return nil, fmt.Errorf("unknown element <%s>: expected min, max, scope or step", k)
			}
		}
		return out, nil
	})
}

func idsXML(root *xmlNode) (any, error) {
	assignments := func(n *xmlNode) (any, error) {
		return named(n, "assignment", func(a *xmlNode) (any, error) {
			num := json.Number(a.text())
			if !IsInt(num) {
				return nil, fmt.Errorf("expected an int, got %q", a.text())
			}
			return num, nil
		})
	}
	out := map[string]any{}
	for i := range root.Nodes {
		c := &root.Nodes[i]
		var err error
		switch k := c.XMLName.Local; k {
		case "ids":
			out[k], err = named(c, "resource", assignments)
		case "lastAssignments":
			out[k], err = assignments(c)
		case "lastAssignmentsPerTarget":
			out[k], err = named(c, "target", assignments)
		default:
			err = fmt.Errorf("unknown element <%s>: expected ids, lastAssignments or lastAssignmentsPerTarget", k)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// elementTree reads an element whose children are named after attributes
// (ports.xsl): an element with children is an attribute set, a leaf an
// int when it reads as one, else a string.
func elementTree(n *xmlNode) any {
	if len(n.Nodes) == 0 {
		if num := json.Number(n.text()); IsInt(num) {
			return num
		} else if n.text() == "" { // <servicesToPorts/>
			return map[string]any{}
		}
		return n.text()
	}
	out := map[string]any{}
	for i := range n.Nodes {
		out[n.Nodes[i].XMLName.Local] = elementTree(&n.Nodes[i])
	}
	return out
}
