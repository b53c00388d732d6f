package qos

import (
	"fmt"

	"github.com/dydisnix/dydisnix/model"
)

// ManifestMapping is one service mapping of a Disnix manifest.
type ManifestMapping struct {
	Service, Target, Container string
}

// PreviousFromMappings converts a manifest's services (key → name, type)
// and service mappings to the previous candidate distribution, as
// dydisnix-previous-distribution does: each mapping, in manifest order, adds
// its target to the list of the service's *name*; when every mapping's
// container equals its service's type the lists hold plain target names,
// otherwise every mapping is a {target, container} record.
func PreviousFromMappings(names, types map[string]string, mappings []ManifestMapping) (model.Distribution, error) {
	automapped := true
	for i, m := range mappings {
		if _, ok := names[m.Service]; !ok {
			return nil, fmt.Errorf("serviceMappings[%d]: service key %q is not in the manifest's services", i, m.Service)
		}
		if m.Container != types[m.Service] {
			automapped = false
		}
	}
	d := model.Distribution{}
	for _, m := range mappings {
		name := names[m.Service]
		mp := model.Mapping{Target: m.Target}
		if !automapped {
			mp.Record, mp.Container = true, m.Container
		}
		d[name] = append(d[name], mp)
	}
	return d, nil
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
