package main

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/qos"
)

// NixDistribution renders a distribution as the original's gendist does:
// a Disnix distribution function {infrastructure}: { svc = [ infrastructure.t ... ]; }
// byte for byte (xsl/distribution_expr.xsl). Unlike the original, which
// silently drops {target, container} records, a service with a record is
// written in Disnix's targets form, so its containers survive:
//
//	svc = {
//	    targets = [
//	      { target = infrastructure.t1; container = "c"; }
//	    ];
//	  };
//
// Names that are not Nix identifiers are quoted.
func NixDistribution(d model.Distribution) string {
	var b strings.Builder
	b.WriteString("\n{infrastructure}:\n\n{\n")
	for _, s := range d.Names() {
		ms := d[s]
		records := false
		for _, m := range ms {
			if m.Record {
				records = true
			}
		}
		if !records {
			fmt.Fprintf(&b, "  %s = [\n", nixAttr(s))
			for _, m := range ms {
				fmt.Fprintf(&b, "    infrastructure.%s\n", nixAttr(m.Target))
			}
			b.WriteString("  ];\n")
			continue
		}
		fmt.Fprintf(&b, "  %s = {\n    targets = [\n", nixAttr(s))
		for _, m := range ms {
			fmt.Fprintf(&b, "      { target = infrastructure.%s;", nixAttr(m.Target))
			if m.Record && m.Container != "" {
				fmt.Fprintf(&b, " container = %s;", nixString(m.Container))
			}
			b.WriteString(" }\n")
		}
		b.WriteString("    ];\n  };\n")
	}
	b.WriteString("  \n}\n\t")
	return b.String()
}

var nixKeywords = map[string]bool{"if": true, "then": true, "else": true, "assert": true, "with": true,
	"let": true, "in": true, "rec": true, "inherit": true, "or": true}

// nixAttr writes an attribute name: bare when it is a Nix identifier,
// quoted otherwise.
func nixAttr(s string) string {
	ok := s != "" && !nixKeywords[s]
	for i, c := range s {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '\'' || c == '-'):
		default:
			ok = false
		}
	}
	if ok {
		return s
	}
	return nixString(s)
}

func nixString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$':
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteString(`\$`)
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// previousFromXMLManifest reads a Disnix manifest V2 (XML) and converts it
// to the previous distribution (dydisnix-previous-distribution).
func previousFromXMLManifest(data []byte, file string) (model.Distribution, error) {
	var m struct {
		XMLName  xml.Name `xml:"manifest"`
		Version  string   `xml:"version,attr"`
		Services []struct {
			Key  string `xml:"name,attr"`
			Name string `xml:"name"`
			Type string `xml:"type"`
		} `xml:"services>service"`
		Mappings []struct {
			Service   string `xml:"service"`
			Target    string `xml:"target"`
			Container string `xml:"container"`
		} `xml:"serviceMappings>mapping"`
	}
	if err := xml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: the provided manifest cannot be read: %v", file, err)
	}
	if m.Version != "2" {
		return nil, fmt.Errorf("%s: manifest version %s: only version 2 manifests are supported (use disnix-convert)", file, strconv.Quote(m.Version))
	}
	names, types := map[string]string{}, map[string]string{}
	for _, s := range m.Services {
		names[s.Key], types[s.Key] = s.Name, s.Type
	}
	mappings := make([]qos.ManifestMapping, len(m.Mappings))
	for i, x := range m.Mappings {
		mappings[i] = qos.ManifestMapping{Service: x.Service, Target: x.Target, Container: x.Container}
	}
	d, err := qos.PreviousFromMappings(names, types, mappings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return d, nil
}
