package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// ManifestVersion is the version of the manifest format written by WriteManifest.
const ManifestVersion = 1

// Manifest records what is deployed (the Go form of Disnix's manifest V2):
// the services by key, the service mappings (key → target, container), the
// snapshot mappings of the services whose state is managed, and the
// infrastructure the deployment was made on (so a later transition knows how
// to reach targets that have since left the infrastructure).
type Manifest struct {
	// Version is the manifest format version (ManifestVersion).
	Version int `json:"version"`
	// Generation is the coordinator generation number (0 = not installed yet).
	Generation int `json:"generation"`
	// Services holds one entry per service key.
	Services map[string]ManifestService `json:"services"`
	// Mappings are the service mappings, sorted by (target, container, key).
	Mappings []ServiceMapping `json:"serviceMappings"`
	// Snapshots are the snapshot mappings (services with deployState), sorted like Mappings.
	Snapshots []ServiceMapping `json:"snapshotMappings"`
	// Infrastructure is the infrastructure model the manifest was built for.
	Infrastructure Infrastructure `json:"infrastructure"`
	// TargetProperty is the default property naming a target's agent
	// address ("" = agentURL); a target's own targetProperty wins.
	TargetProperty string `json:"targetProperty,omitempty"`
}

// ManifestService is one service of a manifest, keyed by its service key.
type ManifestService struct {
	// Name is the service name of the services model.
	Name string `json:"name"`
	// Type is the activation type (e.g. "process").
	Type string `json:"type"`
	// Pkg is the artifact path on the coordinator (resolved, absolute), or "".
	Pkg string `json:"pkg,omitempty"`
	// Artifact is "sha256:<hex>" of the executable Pkg resolves to (or,
	// with ArtifactDir, of the deterministic tarball of the directory Pkg),
	// or "".
	Artifact string `json:"artifact,omitempty"`
	// ArtifactDir is true when the artifact is a whole directory (a
	// component: uploaded as a gzip tarball, unpacked on the target).
	ArtifactDir bool `json:"artifactDir,omitempty"`
	// Args are extra command line arguments of a process service.
	Args []string `json:"args,omitempty"`
	// HealthCheck is the declared health check ("http://..." or "tcp://host:port"), or "".
	HealthCheck string `json:"healthCheck,omitempty"`
	// Properties are the service's properties (everything but the reserved attributes).
	Properties map[string]any `json:"properties,omitempty"`
	// DeployState is true when the service's state is managed.
	DeployState bool `json:"deployState,omitempty"`
	// DependsOn are the mappings of the services this one depends on (ordering, hashed).
	DependsOn []ServiceMapping `json:"dependsOn"`
	// ConnectsTo are the mappings of the services this one talks to (no ordering, not hashed).
	ConnectsTo []ServiceMapping `json:"connectsTo"`
	// Provider is set when the service is hosted in a container that
	// another service provides on its targets (providesContainer(s)): its
	// module is the provider's, its container properties the provider's.
	Provider *ContainerProvider `json:"provider,omitempty"`
}

// ContainerProvider is the container-providing service a service is
// hosted by (Disnix's containerProvidedByService).
type ContainerProvider struct {
	// Service is the provider's service name.
	Service string `json:"service"`
	// Container is the container's name.
	Container string `json:"container"`
	// Artifact is the provider's artifact ("sha256:<hex>"): its component
	// on the target, which holds the module.
	Artifact string `json:"artifact"`
	// Module is the module's path inside the provider's component
	// ("libexec/dysnomia/<module>").
	Module string `json:"module"`
	// Properties are the container's properties the provider exposes.
	Properties map[string]any `json:"properties,omitempty"`
}

// ServiceMapping places the service with key Service on Target in Container.
type ServiceMapping struct {
	Service   string `json:"service"`
	Target    string `json:"target"`
	Container string `json:"container"`
}

// Less orders mappings by (target, container, service key), as Disnix does.
func (m ServiceMapping) Less(o ServiceMapping) bool {
	if m.Target != o.Target {
		return m.Target < o.Target
	}
	if m.Container != o.Container {
		return m.Container < o.Container
	}
	return m.Service < o.Service
}

// SortMappings sorts mappings by (target, container, service key).
func SortMappings(ms []ServiceMapping) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Less(ms[j]) })
}

// Key returns the service key: the SHA-256 (hex) of the canonical JSON of
// the fields that define what runs (name, type, pkg digest, args, health
// check, properties, deployState, container provider) and of the dependsOn mappings, which hold
// the dependencies' own keys: keys are Merkle-like, so a change in a
// dependency (its key or its location) changes every dependent's key.
// connectsTo is not hashed.
func (s ManifestService) Key() string {
	h := struct {
		Name        string             `json:"name"`
		Type        string             `json:"type"`
		Artifact    string             `json:"artifact"`
		Pkg         string             `json:"pkg"`
		Args        []string           `json:"args"`
		HealthCheck string             `json:"healthCheck"`
		Properties  map[string]any     `json:"properties"`
		DeployState bool               `json:"deployState"`
		DependsOn   []ServiceMapping   `json:"dependsOn"`
		Provider    *ContainerProvider `json:"provider,omitempty"`
	}{s.Name, s.Type, s.Artifact, "", nil, s.HealthCheck, nil, s.DeployState, nil, s.Provider}
	// Empty and absent collections hash alike (a JSON round trip drops them).
	if len(s.Args) > 0 {
		h.Args = s.Args
	}
	if len(s.Properties) > 0 {
		h.Properties = s.Properties
	}
	if len(s.DependsOn) > 0 {
		h.DependsOn = s.DependsOn
	}
	if s.Artifact == "" {
		h.Pkg = s.Pkg
	}
	b, err := json.Marshal(h) // encoding/json sorts map keys: canonical
	if err != nil {
		b = []byte(fmt.Sprint(h))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// MappingsOn returns the service mappings placed on target.
func (m *Manifest) MappingsOn(target string) []ServiceMapping {
	var out []ServiceMapping
	for _, x := range m.Mappings {
		if x.Target == target {
			out = append(out, x)
		}
	}
	return out
}

// Targets returns the names of the targets that carry at least one mapping, sorted.
func (m *Manifest) Targets() []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range m.Mappings {
		if !seen[x.Target] {
			seen[x.Target] = true
			out = append(out, x.Target)
		}
	}
	sort.Strings(out)
	return out
}

// Equivalent reports whether two manifests describe the same deployment
// (everything but the generation number).
func (m *Manifest) Equivalent(o *Manifest) bool {
	if m == nil || o == nil {
		return m == o
	}
	a, b := *m, *o
	a.Generation, b.Generation = 0, 0
	x, err1 := json.Marshal(&a)
	y, err2 := json.Marshal(&b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// Normalize sorts the mapping lists and fills nil collections so that equal
// manifests serialise identically.
func (m *Manifest) Normalize() {
	if m.Version == 0 {
		m.Version = ManifestVersion
	}
	if m.Services == nil {
		m.Services = map[string]ManifestService{}
	}
	if m.Infrastructure == nil {
		m.Infrastructure = Infrastructure{}
	}
	if m.Mappings == nil {
		m.Mappings = []ServiceMapping{}
	}
	if m.Snapshots == nil {
		m.Snapshots = []ServiceMapping{}
	}
	SortMappings(m.Mappings)
	SortMappings(m.Snapshots)
	for k, s := range m.Services {
		if s.Properties == nil {
			s.Properties = map[string]any{}
		}
		if len(s.Args) == 0 {
			s.Args = nil
		}
		if s.DependsOn == nil {
			s.DependsOn = []ServiceMapping{}
		}
		if s.ConnectsTo == nil {
			s.ConnectsTo = []ServiceMapping{}
		}
		m.Services[k] = s
	}
}

// Validate checks that every reference of the manifest resolves: mapped
// and referenced keys exist in Services. Targets need not be in the
// infrastructure (a manifest may record a machine that has since gone).
func (m *Manifest) Validate() error {
	for _, x := range m.Mappings {
		if _, ok := m.Services[x.Service]; !ok {
			return fmt.Errorf("manifest: serviceMappings: service key %s on target %s is not in services", x.Service, x.Target)
		}
	}
	for _, x := range m.Snapshots {
		if _, ok := m.Services[x.Service]; !ok {
			return fmt.Errorf("manifest: snapshotMappings: service key %s on target %s is not in services", x.Service, x.Target)
		}
	}
	for key, s := range m.Services {
		if s.Name == "" {
			return fmt.Errorf("manifest: services.%s: no name", key)
		}
		for _, d := range s.DependsOn {
			if _, ok := m.Services[d.Service]; !ok {
				return fmt.Errorf("manifest: services.%s (%s): dependsOn key %s is not in services", key, s.Name, d.Service)
			}
		}
	}
	return nil
}

// MarshalManifest returns the manifest's canonical, indented JSON form.
func MarshalManifest(m *Manifest) ([]byte, error) {
	c := *m
	c.Normalize()
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// UnmarshalManifest reads a manifest written by MarshalManifest. file is
// used in error messages.
func UnmarshalManifest(data []byte, file string) (*Manifest, error) {
	var raw struct {
		Version        int                        `json:"version"`
		Generation     int                        `json:"generation"`
		Services       map[string]json.RawMessage `json:"services"`
		Mappings       []ServiceMapping           `json:"serviceMappings"`
		Snapshots      []ServiceMapping           `json:"snapshotMappings"`
		Infrastructure json.RawMessage            `json:"infrastructure"`
		TargetProperty string                     `json:"targetProperty"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("manifest: %v", err)}
	}
	if raw.Version != ManifestVersion {
		return nil, &Error{File: file, Place: "version", Msg: fmt.Sprintf("manifest version %d: expected %d", raw.Version, ManifestVersion)}
	}
	m := &Manifest{Version: raw.Version, Generation: raw.Generation, Mappings: raw.Mappings,
		Snapshots: raw.Snapshots, TargetProperty: raw.TargetProperty, Services: map[string]ManifestService{}}
	for key, rs := range raw.Services {
		var s ManifestService
		dec := json.NewDecoder(bytes.NewReader(rs))
		dec.UseNumber()
		if err := dec.Decode(&s); err != nil {
			return nil, &Error{File: file, Place: "services." + key, Msg: err.Error()}
		}
		m.Services[key] = s
	}
	if len(raw.Infrastructure) > 0 && string(raw.Infrastructure) != "null" {
		v, err := DecodeValue(raw.Infrastructure, FormatJSON, file)
		if err != nil {
			return nil, err
		}
		infra, err := InfrastructureFromValue(v, file)
		if err != nil {
			return nil, err
		}
		m.Infrastructure = infra
	}
	m.Normalize()
	if err := m.Validate(); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return m, nil
}

// ReadManifest reads a manifest file.
func ReadManifest(file string) (*Manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return UnmarshalManifest(data, file)
}

// WriteManifest writes a manifest file atomically.
func WriteManifest(file string, m *Manifest) error {
	b, err := MarshalManifest(m)
	if err != nil {
		return err
	}
	return WriteFileAtomic(file, b, 0o644)
}

// ManifestDistribution returns the distribution a manifest records (nil
// for a nil manifest): the previous distribution of the next policy run.
func ManifestDistribution(m *Manifest) Distribution {
	if m == nil {
		return nil
	}
	d := Distribution{}
	for _, x := range m.Mappings {
		name := m.Services[x.Service].Name
		d[name] = append(d[name], Mapping{Target: x.Target})
	}
	return d
}
