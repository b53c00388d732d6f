package qos

import (
	"fmt"

	"github.com/dydisnix/dydisnix/model"
)

// ManifestMapping is one service mapping of a Disnix manifest.
type ManifestMapping = model.DisnixMapping

// PreviousFromMappings converts a manifest's services and service mappings
// to the previous candidate distribution (model.PreviousFromDisnixMappings).
func PreviousFromMappings(names, types map[string]string, mappings []ManifestMapping) (model.Distribution, error) {
	return model.PreviousFromDisnixMappings(names, types, mappings)
}

// IsManifest reports whether a JSON-like value looks like a Disnix manifest
// (it has "serviceMappings") rather than a distribution.
func IsManifest(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, has := m["serviceMappings"]
	return has
}

// PreviousFromManifest converts the JSON form of a manifest
// {services: {KEY: {name, type, ...}}, serviceMappings: [{service, target, container}]}
// to the previous distribution (see PreviousFromMappings).
func PreviousFromManifest(v any, file string) (model.Distribution, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, perr(file, "", "expected a manifest attribute set, got %s", model.TypeName(v))
	}
	names, types := map[string]string{}, map[string]string{}
	if svcs, has := top["services"]; has && svcs != nil {
		sm, ok := svcs.(map[string]any)
		if !ok {
			return nil, perr(file, "services", "expected an attribute set of services, got %s", model.TypeName(svcs))
		}
		for _, key := range model.SortedKeys(sm) {
			s, ok := sm[key].(map[string]any)
			if !ok {
				return nil, perr(file, "services."+key, "expected a service attribute set, got %s", model.TypeName(sm[key]))
			}
			name, ok := s["name"].(string)
			if !ok {
				return nil, perr(file, "services."+key+".name", "expected a string, got %s", model.TypeName(s["name"]))
			}
			names[key] = name
			types[key], _ = s["type"].(string)
		}
	}
	var mappings []ManifestMapping
	if ms, has := top["serviceMappings"]; has && ms != nil {
		l, ok := ms.([]any)
		if !ok {
			return nil, perr(file, "serviceMappings", "expected a list of mappings, got %s", model.TypeName(ms))
		}
		for i, e := range l {
			m, ok := e.(map[string]any)
			place := fmt.Sprintf("serviceMappings[%d]", i)
			if !ok {
				return nil, perr(file, place, "expected {service, target, container}, got %s", model.TypeName(e))
			}
			var mm ManifestMapping
			for _, f := range []struct {
				key string
				dst *string
			}{{"service", &mm.Service}, {"target", &mm.Target}, {"container", &mm.Container}} {
				s, ok := m[f.key].(string)
				if !ok && f.key != "container" {
					return nil, perr(file, place+"."+f.key, "expected a string, got %s", model.TypeName(m[f.key]))
				}
				*f.dst = s
			}
			mappings = append(mappings, mm)
		}
	}
	d, err := PreviousFromMappings(names, types, mappings)
	if err != nil {
		return nil, perr(file, "", "%v", err)
	}
	return d, nil
}
