package deployer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// Attributes of a container-providing service (Disnix §5.4).
const (
	AttrProvidesContainer  = "providesContainer"
	AttrProvidesContainers = "providesContainers"
)

// reservedProviderAttrs are the attributes of a service with
// providesContainer that are not properties of its container (Disnix's
// reserved attributes, plus the deployer's own).
var reservedProviderAttrs = map[string]bool{
	model.AttrName: true, model.AttrPkg: true, model.AttrType: true, "deployState": true,
	model.AttrDependsOn: true, model.AttrConnectsTo: true, "activatesAfter": true,
	AttrProvidesContainer: true, AttrProvidesContainers: true, "targets": true,
	AttrArgs: true, AttrHealthCheck: true, AttrCommand: true,
}

// hosting is how a service mapped into a container that another service
// provides on the same target is run: by the provider's module, with the
// provider's exposed properties, after the provider.
type hosting struct {
	provider  string         // the provider's service name
	container string         // the container's name
	module    string         // the module's path inside the provider's pkg ("libexec/dysnomia/<m>")
	props     map[string]any // the container's properties
}

// providedContainers returns the containers a service provides, by name,
// with the properties it exposes: providesContainer = "c" exposes every
// non-reserved attribute, providesContainers = { c = {props}; } each set.
func providedContainers(s *model.Service) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	if v, ok := s.Attrs[AttrProvidesContainer]; ok {
		c, ok := v.(string)
		if !ok || c == "" {
			return nil, fmt.Errorf("services: %s.%s: expected a container name (a non-empty string), got %s", s.Name, AttrProvidesContainer, model.TypeName(v))
		}
		props := map[string]any{}
		for k, v := range s.Attrs {
			if !reservedProviderAttrs[k] {
				props[k] = model.CloneValue(v)
			}
		}
		out[c] = props
	}
	if v, ok := s.Attrs[AttrProvidesContainers]; ok {
		cs, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("services: %s.%s: expected an attribute set container name → properties, got %s", s.Name, AttrProvidesContainers, model.TypeName(v))
		}
		for c, pv := range cs {
			props, ok := pv.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("services: %s.%s.%s: expected an attribute set of container properties, got %s", s.Name, AttrProvidesContainers, c, model.TypeName(pv))
			}
			if _, dup := out[c]; dup {
				return nil, fmt.Errorf("services: %s provides container %q twice (providesContainer and providesContainers)", s.Name, c)
			}
			out[c], _ = model.CloneValue(props).(map[string]any)
		}
	}
	return out, nil
}

// resolveHosting finds, for every distributed service, whether it is
// mapped into a container provided by another service on the same target
// (Disnix §1.3, §5.4): the container of a mapping is the distribution's
// container, else the service's type; when a service mapped to that
// target provides a container of that name, the service is hosted by it.
// A container named in the distribution (other than the type) that no
// service on the target provides and the infrastructure does not declare
// is an error, as is a hosted service whose mappings are not all hosted
// by the same provider (a manifest service has one type), a provider
// whose pkg holds no module for the container, or two providers of one
// container on one target. It returns the hosting of each hosted service
// by name.
func resolveHosting(svcs model.Services, infra model.Infrastructure, dist model.Distribution, opts BuildOptions) (map[string]*hosting, error) {
	type provided struct {
		provider string
		props    map[string]any
	}
	table := map[string]map[string]provided{} // target → container → provider
	for _, name := range dist.Names() {
		cs, err := providedContainers(svcs[name])
		if err != nil {
			return nil, err
		}
		for _, c := range sortedKeysOf(cs) {
			for _, m := range dist[name] {
				if table[m.Target] == nil {
					table[m.Target] = map[string]provided{}
				}
				if p, ok := table[m.Target][c]; ok && p.provider != name {
					return nil, fmt.Errorf("distribution: services %s and %s both provide container %q on target %s", p.provider, name, c, m.Target)
				}
				table[m.Target][c] = provided{name, cs[c]}
			}
		}
	}
	out := map[string]*hosting{}
	for _, name := range dist.Names() {
		s := svcs[name]
		if s.Type == "package" {
			continue
		}
		var h *hosting
		hosted, plain := []string{}, []string{}
		for _, m := range dist[name] {
			c := m.Container
			if c == "" {
				c = containerOf(s)
			}
			p, ok := table[m.Target][c]
			if !ok || p.provider == name {
				if m.Container != "" && m.Container != s.Type && !declaresContainer(infra[m.Target], c) {
					return nil, fmt.Errorf("distribution: service %s is mapped to target %s into container %q, which no service mapped to %s provides (providesContainer) and the infrastructure does not declare (%s.containers.%s)",
						name, m.Target, c, m.Target, m.Target, c)
				}
				plain = append(plain, m.Target)
				continue
			}
			hosted = append(hosted, m.Target)
			if h == nil {
				h = &hosting{provider: p.provider, container: c, props: p.props}
			} else if h.provider != p.provider || h.container != c {
				return nil, fmt.Errorf("distribution: service %s is hosted by %s (container %q) and by %s (container %q): one service is run by one module, map it into one provider's container on all its targets",
					name, h.provider, h.container, p.provider, c)
			}
		}
		if h == nil {
			continue
		}
		if len(plain) > 0 {
			return nil, fmt.Errorf("distribution: service %s is hosted in container %q provided by %s on %s, but not on %s (no provider there): one service is run by one module, map it into the provider's container on all its targets",
				name, h.container, h.provider, strings.Join(hosted, ", "), strings.Join(plain, ", "))
		}
		if err := h.resolveModule(svcs[h.provider], opts); err != nil {
			return nil, err
		}
		out[name] = h
	}
	return out, nil
}

func declaresContainer(t *model.Target, c string) bool {
	if t == nil {
		return false
	}
	_, ok := t.Containers[c]
	return ok
}

// resolveModule finds the provider's module for h.container in its pkg
// directory: libexec/dysnomia/<container> when present, else the single
// file of libexec/dysnomia/ (Dysnomia's rule for a type that is a
// directory); and adds the key=value lines of etc/dysnomia/containers/
// <container>, when present, under the properties of the model (which
// win). With SkipArtifacts the pkg is not read: the module is assumed
// to be named like the container.
func (h *hosting) resolveModule(p *model.Service, opts BuildOptions) error {
	pkg, ok := p.Attrs[model.AttrPkg].(string)
	if !ok {
		return fmt.Errorf("services: %s provides container %q but has no pkg (a directory holding its Dysnomia module in libexec/dysnomia/)", p.Name, h.container)
	}
	if opts.SkipArtifacts {
		h.module = "libexec/dysnomia/" + h.container
		return nil
	}
	dir := pkg
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(opts.BaseDir, dir)
	}
	modDir := filepath.Join(dir, "libexec", "dysnomia")
	ents, err := os.ReadDir(modDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("services: %s provides container %q: %w", p.Name, h.container, err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() {
			files = append(files, e.Name())
		}
	}
	switch {
	case containsString(files, h.container):
		h.module = "libexec/dysnomia/" + h.container
	case len(files) == 1:
		h.module = "libexec/dysnomia/" + files[0]
	default:
		return fmt.Errorf("services: %s provides container %q but its pkg %s has no Dysnomia module for it: expected libexec/dysnomia/%s or a single file in libexec/dysnomia/ (found %d)",
			p.Name, h.container, pkg, h.container, len(files))
	}
	file, err := readContainerFile(filepath.Join(dir, "etc", "dysnomia", "containers", h.container))
	if err != nil {
		return fmt.Errorf("services: %s provides container %q: %w", p.Name, h.container, err)
	}
	props := map[string]any{}
	for k, v := range file {
		props[k] = v
	}
	for k, v := range h.props {
		props[k] = v
	}
	h.props = props
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readContainerFile reads a Dysnomia container file (key=value lines;
// blank lines and lines starting with '#' are skipped); a missing file is
// an empty set.
func readContainerFile(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s:%d: expected key=value, got %q", file, n, line)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, sc.Err()
}

// hostedDeps returns the extra ordering edges of the hosted services
// (service → its provider), for dependencyOrder.
func hostedDeps(hs map[string]*hosting) map[string][]string {
	out := map[string][]string{}
	for name, h := range hs {
		out[name] = []string{h.provider}
	}
	return out
}
