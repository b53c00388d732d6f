package deployer

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// DefaultAgentPort is the port assumed when a target's address names no port.
const DefaultAgentPort = "7420"

// TargetAddress returns the agent URL of a target: the value of the
// property named by the target's targetProperty attribute, else by def,
// else agentURL. A value without a scheme ("host" or "host:port") is taken
// as http://host:port, port 7420 when absent.
func TargetAddress(t *model.Target, def string) (string, error) {
	prop := DefaultTargetProperty
	if s, ok := t.Extra["targetProperty"].(string); ok && s != "" {
		prop = s
	} else if def != "" {
		prop = def
	}
	v, ok := t.Properties[prop]
	if !ok && prop != DefaultTargetProperty {
		v, ok = t.Properties[DefaultTargetProperty]
		prop = DefaultTargetProperty
	}
	s, _ := model.ScalarText(v)
	if !ok || s == "" {
		return "", fmt.Errorf("target %s: no agent address: property %q is not set", t.Name, prop)
	}
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, DefaultAgentPort)
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("target %s: property %q = %q: expected http://host:port", t.Name, prop, s)
	}
	return strings.TrimRight(s, "/"), nil
}

// targetHost is the host name peers use to reach services on t: the host
// of its agent URL, else its hostname property, else its name.
func targetHost(t *model.Target, def string) string {
	if t == nil {
		return ""
	}
	if a, err := TargetAddress(t, def); err == nil {
		if u, err := url.Parse(a); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	if h, ok := model.ScalarText(t.Properties["hostname"]); ok && h != "" {
		return h
	}
	return t.Name
}

// EnvName turns a name into its environment variable form: upper case,
// every character other than A-Z, 0-9 and _ replaced by _.
func EnvName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ActivateRequest builds the request that activates mapping m of man: the
// service's environment (DYDISNIX_SERVICE, DYDISNIX_TARGET,
// DYDISNIX_PROP_<NAME> for every scalar property, DYDISNIX_DEP_<SVC>_<NAME>
// for every scalar property of every dependsOn/connectsTo service and
// DYDISNIX_DEP_<SVC>_TARGET, the host it runs on; with replicas, the first
// mapping), the context document (everything, with every replica) and the
// container properties (the infrastructure's containers.<container>, or,
// for a service hosted in a container another service provides, that
// provider's exposed properties).
func ActivateRequest(man *model.Manifest, m model.ServiceMapping) agentapi.ActivateRequest {
	svc := man.Services[m.Service]
	env := map[string]string{
		"DYDISNIX_SERVICE":   svc.Name,
		"DYDISNIX_TARGET":    m.Target,
		"DYDISNIX_CONTAINER": m.Container,
	}
	if t := man.Infrastructure[m.Target]; t != nil {
		env["DYDISNIX_TARGET_HOST"] = targetHost(t, man.TargetProperty)
	}
	for k, v := range svc.Properties {
		if s, ok := model.ScalarText(v); ok {
			env["DYDISNIX_PROP_"+EnvName(k)] = s
		}
	}
	deps := func(list []model.ServiceMapping) map[string]any {
		out := map[string]any{}
		for _, d := range list {
			ds := man.Services[d.Service]
			t := man.Infrastructure[d.Target]
			host := targetHost(t, man.TargetProperty)
			if host == "" {
				host = d.Target
			}
			var tprops map[string]any
			if t != nil {
				tprops = t.Properties
			}
			loc := map[string]any{"target": d.Target, "host": host, "container": d.Container, "key": d.Service, "targetProperties": tprops}
			if _, seen := out[ds.Name]; !seen {
				prefix := "DYDISNIX_DEP_" + EnvName(ds.Name) + "_"
				for k, v := range ds.Properties {
					if s, ok := model.ScalarText(v); ok {
						env[prefix+EnvName(k)] = s
					}
				}
				env[prefix+"TARGET"] = host
				env[prefix+"TARGETNAME"] = d.Target
				out[ds.Name] = map[string]any{"name": ds.Name, "properties": ds.Properties, "targets": []any{}}
			}
			e := out[ds.Name].(map[string]any)
			e["targets"] = append(e["targets"].([]any), loc)
		}
		return out
	}
	ctx := map[string]any{
		"service":    svc.Name,
		"key":        m.Service,
		"target":     m.Target,
		"container":  m.Container,
		"properties": svc.Properties,
	}
	// connectsTo first so that a service in both lists gets dependsOn's values.
	ctx["connectsTo"] = deps(svc.ConnectsTo)
	ctx["dependsOn"] = deps(svc.DependsOn)
	req := agentapi.ActivateRequest{Key: m.Service, Target: m.Target, Container: m.Container, Service: svc, Env: env, Context: ctx}
	var containerProps map[string]any
	if t := man.Infrastructure[m.Target]; t != nil {
		containerProps = t.Containers[m.Container]
	}
	if svc.Provider != nil {
		// Hosted in a container a service provides: its exposed properties.
		containerProps = svc.Provider.Properties
	}
	for k, v := range containerProps {
		if s, ok := model.ScalarText(v); ok {
			if req.ContainerProperties == nil {
				req.ContainerProperties = map[string]string{}
			}
			req.ContainerProperties[k] = s
		}
	}
	return req
}
