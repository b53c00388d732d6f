package model

import (
	"encoding/xml"
	"fmt"
	"strings"
	"unicode"
)

// DistributionXML returns a candidate distribution in the XML of the
// original dydisnix-gendist --output-xml (xsl/distribution.xsl, dydisnix.md
// §1.4(c)): an XML declaration line, then one line
//
//	<distribution><service name="svc"><mapping><target>t1</target></mapping>…</service>…</distribution>
//
// with a final newline. Services are sorted; in each, the record mappings
// come first (one child element per attribute, in sorted order: container,
// target), then the plain target names. A service without mappings is an
// empty element. This is also the form the original's --xml inputs read.
func DistributionXML(d Distribution) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<distribution>")
	for _, svc := range d.Names() {
		ms := d[svc]
		if len(ms) == 0 {
			fmt.Fprintf(&b, "<service name=\"%s\"/>", xmlEscape(svc))
			continue
		}
		fmt.Fprintf(&b, "<service name=\"%s\">", xmlEscape(svc))
		for _, records := range []bool{true, false} {
			for _, m := range ms {
				if m.Record != records {
					continue
				}
				b.WriteString("<mapping>")
				if m.Record && m.Container != "" {
					b.WriteString("<container>" + xmlEscape(m.Container) + "</container>")
				}
				b.WriteString("<target>" + xmlEscape(m.Target) + "</target></mapping>")
			}
		}
		b.WriteString("</service>")
	}
	b.WriteString("</distribution>\n")
	return b.String()
}

// IDsXML returns an ids file (the value of portassign's IDs: "ids" →
// resource → service → id, and the optional "lastAssignments" and
// "lastAssignmentsPerTarget") in the XML of the original id-assign
// --output-xml (dydisnix.md §1.9), indented by two spaces as the C tools
// print, without a trailing newline:
//
//	<ids>
//	  <ids>
//	    <resource name="ports">
//	      <assignment name="svc">3000</assignment>
//	    </resource>
//	  </ids>
//	  <lastAssignments>
//	    <assignment name="ports">3000</assignment>
//	  </lastAssignments>
//	  <lastAssignmentsPerTarget>
//	    <target name="t">
//	      <assignment name="ports">3001</assignment>
//	    </target>
//	  </lastAssignmentsPerTarget>
//	</ids>
//
// Every level is sorted; an empty section is an empty element.
func IDsXML(ids map[string]any) string {
	var b strings.Builder
	b.WriteString("<ids>\n")
	table := func(indent, elem, name string, v any) {
		m, _ := v.(map[string]any)
		if len(m) == 0 {
			fmt.Fprintf(&b, "%s<%s name=\"%s\"/>\n", indent, elem, xmlEscape(name))
			return
		}
		fmt.Fprintf(&b, "%s<%s name=\"%s\">\n", indent, elem, xmlEscape(name))
		for _, k := range SortedKeys(m) {
			fmt.Fprintf(&b, "%s  <assignment name=\"%s\">%v</assignment>\n", indent, xmlEscape(k), m[k])
		}
		fmt.Fprintf(&b, "%s</%s>\n", indent, elem)
	}
	section := func(name, elem string, always bool) {
		m, _ := ids[name].(map[string]any)
		switch {
		case len(m) == 0 && !always:
			return
		case len(m) == 0:
			fmt.Fprintf(&b, "  <%s/>\n", name)
			return
		}
		fmt.Fprintf(&b, "  <%s>\n", name)
		for _, k := range SortedKeys(m) {
			if elem == "" {
				fmt.Fprintf(&b, "    <assignment name=\"%s\">%v</assignment>\n", xmlEscape(k), m[k])
			} else {
				table("    ", elem, k, m[k])
			}
		}
		fmt.Fprintf(&b, "  </%s>\n", name)
	}
	section("ids", "resource", true)
	section("lastAssignments", "", false)
	section("lastAssignmentsPerTarget", "target", false)
	b.WriteString("</ids>")
	return b.String()
}

// xmlEscape escapes text for an XML element or a double-quoted attribute.
func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // a strings.Builder does not fail
	return b.String()
}

// PortsXML returns the configuration of a ports file (the value's
// "portConfiguration": globalConfig and targetConfigs, pools of lastPort,
// minPort, maxPort and servicesToPorts) in the XML of the original's
// legacy ports.xsl (dydisnix.md §1.13), which the port assigner reads back
// with --xml: one element per attribute, named after it, indented by two
// spaces, without a trailing newline. The "ports" section is left out: it
// is recomputed on every run. A service or target name that is not an XML
// name is an error.
func PortsXML(ports map[string]any) (string, error) {
	var b strings.Builder
	var write func(indent, name string, v any) error
	write = func(indent, name string, v any) error {
		if !isXMLName(name) {
			return fmt.Errorf("%q cannot be an XML element name", name)
		}
		m, ok := v.(map[string]any)
		switch {
		case !ok:
			fmt.Fprintf(&b, "%s<%s>%s</%s>\n", indent, name, xmlEscape(fmt.Sprint(v)), name)
			return nil
		case len(m) == 0:
			fmt.Fprintf(&b, "%s<%s/>\n", indent, name)
			return nil
		}
		fmt.Fprintf(&b, "%s<%s>\n", indent, name)
		keys := SortedKeys(m)
		if name != "servicesToPorts" && name != "targetConfigs" && name != "portConfiguration" {
			keys = []string{"lastPort", "minPort", "maxPort", "servicesToPorts"} // a pool
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				continue
			}
			if err := write(indent+"  ", k, m[k]); err != nil {
				return err
			}
		}
		fmt.Fprintf(&b, "%s</%s>\n", indent, name)
		return nil
	}
	conf, _ := ports["portConfiguration"].(map[string]any)
	if conf == nil {
		conf = map[string]any{}
	}
	if err := write("", "portConfiguration", conf); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// isXMLName reports whether s is usable as an element name: a letter or _
// first, then letters, digits, '-', '_' or '.' (and not starting with "xml").
func isXMLName(s string) bool {
	if s == "" || strings.HasPrefix(strings.ToLower(s), "xml") {
		return false
	}
	for i, r := range s {
		letter := r == '_' || unicode.IsLetter(r)
		if !letter && (i == 0 || (r != '-' && r != '.' && !unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}
