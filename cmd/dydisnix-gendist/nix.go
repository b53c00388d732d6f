package main

import (
	"encoding/xml"
	"fmt"
	"strconv"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/qos"
)

// NixDistribution renders a distribution as a Disnix distribution function.
// When every mapping is a plain target name it is byte for byte what the
// original gendist wrote (xsl/distribution_expr.xsl,
// model.DistributionNixReference):
//
//	{infrastructure}:
//
//	{
//	  svc = [
//	    infrastructure.t1
//	  ];
//	}
//
// The original silently dropped {target, container} records; when there is
// one, the whole distribution is written with model.DistributionNix, whose
// services with records use Disnix's targets form
// (svc = { targets = [ { target = infrastructure.t; container = "c"; } ]; };),
// so containers survive. Names that are not Nix identifiers are quoted.
func NixDistribution(d model.Distribution) string {
	for _, ms := range d {
		for _, m := range ms {
			if m.Record {
				return model.DistributionNix(d)
			}
		}
	}
	return model.DistributionNixReference(d)
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
