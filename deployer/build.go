// Package deployer carries a deployment from one manifest to the next: it
// builds manifests from the models (BuildManifest), plans the transition
// between two manifests (PlanTransition, pure) and executes plans through a
// Backend (the embedded agent backend here, the Disnix backend in
// deployer/disnix). Store keeps the coordinator's manifest generations and
// its snapshot store.
package deployer

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// Service attributes with a meaning for the deployer.
const (
	AttrArgs        = "args"
	AttrHealthCheck = "healthCheck"
	AttrCommand     = "command"
	// DefaultTargetProperty is the target property holding an agent's URL.
	DefaultTargetProperty = "agentURL"
)

// BuildOptions tune BuildManifest.
type BuildOptions struct {
	// BaseDir resolves relative pkg paths (the services model's directory).
	BaseDir string
	// DeployState is the global default of deployState (--deploy-state).
	DeployState bool
	// TargetProperty is the default property naming a target's agent
	// address ("" = agentURL); recorded in the manifest.
	TargetProperty string
	// SkipArtifacts does not read pkg files (no digest); for dry runs of
	// models whose artifacts are not on this machine.
	SkipArtifacts bool
	// Digests computes the artifacts' digests (nil: the process-wide
	// cache FileDigest uses), so each distinct file is hashed once and
	// again only when it changes.
	Digests *DigestCache
}

// BuildManifest builds the manifest of the deployment described by the
// models: one manifest service per service (keyed by its Merkle-like key),
// one service mapping per (service, target) of the distribution, one
// snapshot mapping per mapping of a service whose state is managed.
// Services of type "package" get no mappings. A service mapped into a
// container that another service provides on its target
// (providesContainer(s), Disnix §5.4) is run by the provider's module with
// the provider's exposed properties, after the provider (ManifestService.
// Provider, and the provider's mapping in its dependsOn). A dependsOn
// cycle, a distributed service missing from the services model, a target
// missing from the infrastructure, a dependsOn on an undistributed service
// or a container that cannot be resolved (resolveHosting) is an error.
func BuildManifest(svcs model.Services, infra model.Infrastructure, dist model.Distribution, opts BuildOptions) (*model.Manifest, error) {
	for _, name := range dist.Names() {
		s, ok := svcs[name]
		if !ok {
			return nil, fmt.Errorf("distribution: service %q is not in the services model", name)
		}
		for _, m := range dist[name] {
			if _, ok := infra[m.Target]; !ok {
				return nil, fmt.Errorf("distribution: service %q is mapped to target %q, which is not in the infrastructure", name, m.Target)
			}
		}
		for _, d := range s.Inter() {
			if _, ok := svcs[d]; !ok {
				return nil, fmt.Errorf("services: %s: inter-dependency %q is not in the services model", name, d)
			}
		}
	}
	hosted, err := resolveHosting(svcs, infra, dist, opts)
	if err != nil {
		return nil, err
	}
	order, err := dependencyOrder(svcs, hostedDeps(hosted))
	if err != nil {
		return nil, err
	}
	cinfra, err := canonicalInfra(infra)
	if err != nil {
		return nil, err
	}
	man := &model.Manifest{Version: model.ManifestVersion, Services: map[string]model.ManifestService{},
		Infrastructure: cinfra, TargetProperty: opts.TargetProperty}
	keys := map[string]string{} // service name → key
	art := artifactResolver(opts)
	// mappingsOf returns a service's mappings as manifest mappings (container defaults to the type).
	mappingsOf := func(name string) []model.ServiceMapping {
		s := svcs[name]
		var out []model.ServiceMapping
		for _, m := range dist[name] {
			c := m.Container
			if c == "" {
				c = containerOf(s)
			}
			out = append(out, model.ServiceMapping{Service: keys[name], Target: m.Target, Container: c})
		}
		return out
	}
	for _, name := range order {
		s := svcs[name]
		h := hosted[name]
		if h != nil {
			// Run by the provider's module (a type that is a path).
			c := *s
			c.Type = filepath.Join(man.Services[keys[h.provider]].Pkg, h.module)
			s = &c
		}
		ms, err := manifestService(s, opts, art)
		if err != nil {
			return nil, err
		}
		if h != nil {
			pms := man.Services[keys[h.provider]]
			if !pms.ArtifactDir && !opts.SkipArtifacts {
				return nil, fmt.Errorf("services: %s provides container %q (hosting %s): its pkg must be a directory (uploaded whole, holding libexec/dysnomia/), and its type one the agent unpacks (process or a module type, not %s)",
					h.provider, h.container, name, pms.Type)
			}
			ms.Provider = &model.ContainerProvider{Service: h.provider, Container: h.container,
				Artifact: pms.Artifact, Module: h.module, Properties: canonicalProps(h.props)}
			// The implicit activatesAfter: after the provider's mapping on each of its targets.
			for _, hm := range dist[name] {
				for _, pm := range mappingsOf(h.provider) {
					if pm.Target == hm.Target {
						ms.DependsOn = append(ms.DependsOn, pm)
					}
				}
			}
		}
		for _, d := range s.DependsOn {
			dm := mappingsOf(d)
			if len(dm) == 0 && len(dist[name]) > 0 {
				return nil, fmt.Errorf("services: %s depends on %s, which the distribution maps to no target", name, d)
			}
			ms.DependsOn = append(ms.DependsOn, dm...)
		}
		ms.DependsOn = nonNilMappings(ms.DependsOn)
		key := ms.Key()
		keys[name] = key
		man.Services[key] = ms
	}
	// connectsTo is not hashed: fill it in once every key is known (cycles allowed).
	for _, name := range order {
		s := svcs[name]
		key := keys[name]
		ms := man.Services[key]
		ms.ConnectsTo = []model.ServiceMapping{}
		for _, c := range s.ConnectsTo {
			ms.ConnectsTo = append(ms.ConnectsTo, mappingsOf(c)...)
		}
		man.Services[key] = ms
		if s.Type == "package" {
			continue
		}
		for _, m := range mappingsOf(name) {
			man.Mappings = append(man.Mappings, m)
			if ms.DeployState {
				man.Snapshots = append(man.Snapshots, m)
			}
		}
	}
	// Only keep services that are mapped or referenced (undistributed services are not deployed).
	used := map[string]bool{}
	for _, m := range man.Mappings {
		used[m.Service] = true
	}
	for name := range dist {
		used[keys[name]] = true
	}
	for k := range man.Services {
		if !used[k] {
			delete(man.Services, k)
		}
	}
	man.Normalize()
	return man, nil
}

// canonicalInfra returns a deep copy of infra whose values are canonical
// JSON-like values (as a manifest read back from disk holds them).
func canonicalInfra(infra model.Infrastructure) (model.Infrastructure, error) {
	b, err := json.Marshal(infra)
	if err != nil {
		return nil, fmt.Errorf("infrastructure: %w", err)
	}
	v, err := model.DecodeValue(b, model.FormatJSON, "infrastructure")
	if err != nil {
		return nil, err
	}
	return model.InfrastructureFromValue(v, "infrastructure")
}

func containerOf(s *model.Service) string {
	if s.Type != "" {
		return s.Type
	}
	return "process"
}

func nonNilMappings(ms []model.ServiceMapping) []model.ServiceMapping {
	if ms == nil {
		return []model.ServiceMapping{}
	}
	return ms
}

// artifact is a resolved pkg: its executable (or directory) and digest.
type artifact struct {
	exe, digest string
	dir         bool // exe is a directory uploaded whole
	err         error
}

// artifactResolver returns a function resolving a process service's pkg
// to its executable and digest, each distinct pkg once per build (services
// sharing a binary cost one resolution and one cache look-up).
func artifactResolver(opts BuildOptions) func(pkg string, process bool) artifact {
	dc := opts.Digests
	if dc == nil {
		dc = defaultDigests
	}
	seen := map[string]artifact{}
	return func(pkg string, process bool) artifact {
		key := fmt.Sprint(process, "\x00", pkg)
		if a, ok := seen[key]; ok {
			return a
		}
		a := resolveArtifact(pkg, process, opts, dc)
		seen[key] = a
		return a
	}
}

// resolveArtifact resolves a pkg: a directory is uploaded whole (a
// process service's needs exactly one executable in bin/); a file is the
// executable of a process service.
func resolveArtifact(pkg string, process bool, opts BuildOptions, dc *DigestCache) artifact {
	var a artifact
	p := pkg
	if !filepath.IsAbs(p) {
		p = filepath.Join(opts.BaseDir, p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return artifact{err: fmt.Errorf("%s: %w", pkg, err)}
	}
	if fi.IsDir() {
		if process {
			if _, err := ResolvePkg(pkg, opts.BaseDir); err != nil {
				return artifact{err: err}
			}
		}
		a.exe, a.err = filepath.Abs(p)
		a.dir = true
		if a.err == nil && !opts.SkipArtifacts {
			a.digest, a.err = DirDigest(a.exe)
		}
		return a
	}
	if !process {
		return artifact{err: fmt.Errorf("%s: expected a directory (the component its module gets)", pkg)}
	}
	a.exe, a.err = ResolvePkg(pkg, opts.BaseDir)
	if a.err == nil && !opts.SkipArtifacts {
		a.digest, a.err = dc.Digest(a.exe)
	}
	return a
}

// ArtifactDigest computes the digest of a manifest service's artifact
// as it is now at its Pkg (a directory or an executable).
func ArtifactDigest(ms model.ManifestService) (string, error) {
	if ms.ArtifactDir {
		return DirDigest(ms.Pkg)
	}
	return FileDigest(ms.Pkg)
}

// DirDigest returns "sha256:<hex>" of the deterministic tarball of a
// directory (agentapi.WriteTarball): the digest of a directory artifact.
func DirDigest(dir string) (string, error) {
	h := sha256.New()
	if err := agentapi.WriteTarball(h, dir, gzip.BestSpeed); err != nil {
		return "", fmt.Errorf("read %s: %w", dir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// dirArtifact writes the tarball of dir to a temporary file (the caller
// removes it) and checks that it still has digest.
func dirArtifact(dir, digest string) (string, error) {
	tmp, err := os.CreateTemp("", "dydisnix-component-*.tar.gz")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = agentapi.WriteTarball(io.MultiWriter(tmp, h), dir, gzip.BestSpeed)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
		err = fmt.Errorf("%s changed since the manifest was built (its digest is no longer %s)", dir, digest)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("component %s: %w", dir, err)
	}
	return tmp.Name(), nil
}

// manifestService turns a model service into its manifest form (without
// dependsOn/connectsTo), resolving and hashing its artifact with art.
func manifestService(s *model.Service, opts BuildOptions, art func(string, bool) artifact) (model.ManifestService, error) {
	ms := model.ManifestService{Name: s.Name, Type: s.Type, Properties: map[string]any{},
		DeployState: s.DeployState() || s.Stateful() || opts.DeployState}
	if ms.Type == "" {
		if t, ok := s.Attrs[model.AttrType].(string); ok {
			ms.Type = t
		}
	}
	for k, v := range s.Attrs {
		switch k {
		case model.AttrPkg, AttrArgs, AttrHealthCheck, AttrCommand:
			continue
		}
		ms.Properties[k] = model.CloneValue(v)
	}
	ms.Properties = canonicalProps(ms.Properties)
	if v, ok := s.Attrs[AttrArgs]; ok {
		args, err := stringList(v)
		if err != nil {
			return ms, fmt.Errorf("services: %s.args: %v", s.Name, err)
		}
		ms.Args = args
	}
	if v, ok := s.Attrs[AttrHealthCheck]; ok {
		hc, ok := v.(string)
		if !ok {
			return ms, fmt.Errorf("services: %s.healthCheck: expected a string (http://host:port/path or tcp://host:port), got %s", s.Name, model.TypeName(v))
		}
		if err := ValidateHealthCheck(hc); err != nil {
			return ms, fmt.Errorf("services: %s.healthCheck: %v", s.Name, err)
		}
		ms.HealthCheck = hc
	}
	pkg, hasPkg := s.Attrs[model.AttrPkg].(string)
	if !hasPkg {
		if v, ok := s.Attrs[AttrCommand]; ok {
			cmd, err := stringList(v)
			if err != nil || len(cmd) == 0 {
				if str, ok := v.(string); ok && strings.TrimSpace(str) != "" {
					cmd = strings.Fields(str)
				} else {
					return ms, fmt.Errorf("services: %s.command: expected a non-empty list of strings or a string", s.Name)
				}
			}
			ms.Args = append(cmd, ms.Args...)
		} else if ms.Type == "process" {
			return ms, fmt.Errorf("services: %s: a process service needs pkg (a path on the coordinator) or command", s.Name)
		}
		return ms, nil
	}
	if ms.Type == "package" || ms.Type == "echo" {
		ms.Pkg = pkg
		return ms, nil
	}
	a := art(pkg, ms.Type == "process")
	if a.err != nil {
		return ms, fmt.Errorf("services: %s.pkg: %w", s.Name, a.err)
	}
	ms.Pkg, ms.Artifact, ms.ArtifactDir = a.exe, a.digest, a.dir
	return ms, nil
}

// canonicalProps returns props as canonical JSON-like values
// (json.Number for every number), exactly as a manifest read back from
// disk holds them.
func canonicalProps(props map[string]any) map[string]any {
	if b, err := json.Marshal(props); err == nil {
		if v, err := model.DecodeValue(b, model.FormatJSON, "services"); err == nil {
			if m, ok := v.(map[string]any); ok {
				return m
			}
		}
	}
	return props
}

// ResolvePkg resolves a process service's pkg: a path relative to baseDir
// (unless absolute) naming an executable file, or a directory whose bin/
// holds exactly one executable.
func ResolvePkg(pkg, baseDir string) (string, error) {
	p := pkg
	if !filepath.IsAbs(p) {
		p = filepath.Join(baseDir, p)
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", pkg, err)
	}
	if fi.IsDir() {
		bin := filepath.Join(p, "bin")
		ents, err := os.ReadDir(bin)
		if err != nil {
			return "", fmt.Errorf("%s is a directory without a bin/ directory: %w", pkg, err)
		}
		var exes []string
		for _, e := range ents {
			if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
				exes = append(exes, filepath.Join(bin, e.Name()))
			}
		}
		if len(exes) != 1 {
			return "", fmt.Errorf("%s/bin: expected exactly one executable, found %d", pkg, len(exes))
		}
		return exes[0], nil
	}
	if fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s: not executable", pkg)
	}
	return p, nil
}

// FileDigest returns "sha256:<hex>" of a file's content. It is cached
// process-wide (see DigestCache): a file is read again only when its size,
// modification or change time or inode changed.
func FileDigest(file string) (string, error) {
	return defaultDigests.Digest(file)
}

var defaultDigests = NewDigestCache()

// DigestCache caches files' sha256 digests by path, keyed by what a change
// of the file changes: size, modification time, change time and inode (a
// file replaced by a rename gets a new inode). It is safe for concurrent
// use.
type DigestCache struct {
	mu       sync.Mutex
	entries  map[string]digestEntry
	computed int
}

type digestEntry struct {
	stamp  fileStamp
	digest string
}

// fileStamp is what identifies one version of a file.
type fileStamp struct {
	size         int64
	mtime, ctime int64
	ino, dev     uint64
}

// NewDigestCache returns an empty cache.
func NewDigestCache() *DigestCache {
	return &DigestCache{entries: map[string]digestEntry{}}
}

// Digest returns "sha256:<hex>" of file's content, hashing the file only
// when the cache has no digest for its current version.
func (c *DigestCache) Digest(file string) (string, error) {
	before, err := stampOf(file)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	e, ok := c.entries[file]
	c.mu.Unlock()
	if ok && e.stamp == before {
		return e.digest, nil
	}
	d, err := hashFile(file)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.computed++
	// Cache it only when the file did not change while it was read.
	if after, err := stampOf(file); err == nil && after == before {
		c.entries[file] = digestEntry{stamp: before, digest: d}
	}
	return d, nil
}

// Computed returns how many times the cache has hashed a file.
func (c *DigestCache) Computed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.computed
}

func stampOf(file string) (fileStamp, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino, st.dev = uint64(sys.Ino), uint64(sys.Dev)
		st.ctime = int64(sys.Ctim.Sec)*1e9 + int64(sys.Ctim.Nsec)
	}
	return st, nil
}

func hashFile(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ValidateHealthCheck checks a healthCheck value: http://…, https://…,
// tcp://host:port or tcp:host:port.
func ValidateHealthCheck(hc string) error {
	switch {
	case strings.HasPrefix(hc, "http://"), strings.HasPrefix(hc, "https://"):
		return nil
	case strings.HasPrefix(hc, "tcp://"), strings.HasPrefix(hc, "tcp:"):
		addr := strings.TrimPrefix(strings.TrimPrefix(hc, "tcp://"), "tcp:")
		if !strings.Contains(addr, ":") {
			return fmt.Errorf("%q: expected tcp://host:port", hc)
		}
		return nil
	}
	return fmt.Errorf("%q: expected http://host:port/path or tcp://host:port", hc)
}

func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected a list of strings, got %s", model.TypeName(v))
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := model.ScalarText(e)
		if !ok {
			return nil, fmt.Errorf("element %d: expected a string, got %s", i, model.TypeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// dependencyOrder returns the service names with every dependsOn dependency
// (and every extra edge: a hosted service's provider) before its
// dependents, or an error naming a cycle.
func dependencyOrder(svcs model.Services, extra map[string][]string) ([]string, error) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var order []string
	var stack []string
	var visit func(string) error
	visit = func(n string) error {
		switch color[n] {
		case grey:
			i := len(stack) - 1
			for i > 0 && stack[i] != n {
				i--
			}
			return fmt.Errorf("services: dependsOn cycle: %s -> %s", strings.Join(stack[i:], " -> "), n)
		case black:
			return nil
		}
		color[n] = grey
		stack = append(stack, n)
		s := svcs[n]
		if s != nil {
			deps := append(append([]string(nil), s.DependsOn...), extra[n]...)
			sort.Strings(deps)
			for _, d := range deps {
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		if s != nil {
			order = append(order, n)
		}
		return nil
	}
	for _, n := range svcs.Names() {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func sortedKeysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
