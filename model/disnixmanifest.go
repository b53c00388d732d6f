package model

import (
	"encoding/xml"
	"fmt"
	"strconv"
)

// DisnixMapping is one service mapping of a Disnix manifest.
type DisnixMapping struct {
	Service, Target, Container string
}

// PreviousFromDisnixMappings converts a Disnix manifest's services (key →
// name, type) and service mappings to the previous candidate distribution,
// as dydisnix-previous-distribution does: each mapping, in manifest order,
// adds its target to the list of the service's *name*; when every mapping's
// container equals its service's type the lists hold plain target names,
// otherwise every mapping is a {target, container} record.
func PreviousFromDisnixMappings(names, types map[string]string, mappings []DisnixMapping) (Distribution, error) {
	automapped := true
	for i, m := range mappings {
		if _, ok := names[m.Service]; !ok {
			return nil, fmt.Errorf("serviceMappings[%d]: service key %q is not in the manifest's services", i, m.Service)
		}
		if m.Target == "" {
			return nil, fmt.Errorf("serviceMappings[%d]: no target", i)
		}
		if m.Container != types[m.Service] {
			automapped = false
		}
	}
	d := Distribution{}
	for _, m := range mappings {
		name := names[m.Service]
		mp := Mapping{Target: m.Target}
		if !automapped {
			mp.Record, mp.Container = true, m.Container
		}
		d[name] = append(d[name], mp)
	}
	return d, nil
}

// PreviousFromDisnixManifestXML reads a Disnix manifest V2 (XML, §3.1 of
// the Disnix specification) and returns the distribution it deployed (see
// PreviousFromDisnixMappings). Errors name file.
func PreviousFromDisnixManifestXML(data []byte, file string) (Distribution, error) {
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
		return nil, fmt.Errorf("%s: manifest version %s: only version 2 manifests are supported (convert older ones with disnix-convert)", file, strconv.Quote(m.Version))
	}
	names, types := map[string]string{}, map[string]string{}
	for _, s := range m.Services {
		names[s.Key], types[s.Key] = s.Name, s.Type
	}
	mappings := make([]DisnixMapping, len(m.Mappings))
	for i, x := range m.Mappings {
		mappings[i] = DisnixMapping{Service: x.Service, Target: x.Target, Container: x.Container}
	}
	d, err := PreviousFromDisnixMappings(names, types, mappings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return d, nil
}
