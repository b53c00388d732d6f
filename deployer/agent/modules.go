package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/deployer/dysnomia"
	"github.com/dydisnix/dydisnix/model"
)

// moduleType reports whether services of type t are run by a Dysnomia
// module (every type but process, which the agent supervises, and
// package and echo, which run nothing).
func moduleType(t string) bool {
	return t != "process" && t != "package" && t != "echo"
}

// dysnomiaStore is the agent's Dysnomia store (DYSNOMIA_STATEDIR).
func (a *Agent) dysnomiaStore() dysnomia.Store { return dysnomia.Store{Dir: a.path("dysnomia")} }

// noArtifact is the hash part of the component directory of a service without pkg.
const noArtifact = "00000000000000000000000000000000"

// componentPath returns the component directory of a mapping: its
// directory artifact unpacked under components/<hash>-<service> (once),
// or an empty directory when it has no artifact.
func (a *Agent) componentPath(req agentapi.ActivateRequest) (string, error) {
	svc := req.Service
	if !safeName.MatchString(svc.Name) {
		return "", &httpError{400, fmt.Sprintf("service name %q: expected letters, digits, '.', '_', '+', '-'", svc.Name)}
	}
	if svc.Artifact == "" {
		dir := a.path("components", noArtifact+"-"+svc.Name)
		return dir, os.MkdirAll(dir, 0o755)
	}
	hexd := strings.TrimPrefix(svc.Artifact, "sha256:")
	if !hexDigest.MatchString(hexd) {
		return "", &httpError{400, fmt.Sprintf("artifact %q: expected sha256:<64 hex digits>", svc.Artifact)}
	}
	if !svc.ArtifactDir {
		return "", &httpError{400, fmt.Sprintf("service %s of type %s: its pkg must be a directory (the component)", svc.Name, svc.Type)}
	}
	dir := a.path("components", hexd[:32]+"-"+svc.Name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	art := a.path("artifacts", hexd)
	f, err := os.Open(art)
	if err != nil {
		return "", &httpError{400, fmt.Sprintf("artifact %s not uploaded", svc.Artifact)}
	}
	defer f.Close()
	if err := os.MkdirAll(a.path("components"), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(a.path("components"), ".unpack-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := extractTarball(f, tmp, extractLimits{bytes: a.cfg.MaxExtract, entries: a.cfg.MaxEntries}); err != nil {
		return "", fmt.Errorf("unpack the component of %s: %w", svc.Name, err)
	}
	os.Chmod(tmp, 0o755)
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return "", err
		}
	}
	return dir, nil
}

// componentExe returns the single executable in bin/ of a process
// service's directory artifact.
func (a *Agent) componentExe(req agentapi.ActivateRequest) (string, error) {
	dir, err := a.componentPath(req)
	if err != nil {
		return "", err
	}
	ents, err := os.ReadDir(filepath.Join(dir, "bin"))
	if err != nil {
		return "", fmt.Errorf("the component of %s has no bin/ directory", req.Service.Name)
	}
	var exes []string
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			exes = append(exes, filepath.Join(dir, "bin", e.Name()))
		}
	}
	if len(exes) != 1 {
		return "", fmt.Errorf("the component of %s: expected exactly one executable in bin/, found %d", req.Service.Name, len(exes))
	}
	return exes[0], nil
}

// modulesPath is DYSNOMIA_MODULES_PATH: the configured one, else the agent's environment's.
func (a *Agent) modulesPath() string {
	if a.cfg.ModulesPath != "" {
		return a.cfg.ModulesPath
	}
	return os.Getenv("DYSNOMIA_MODULES_PATH")
}

// runModule carries out op on a mapping with its type's Dysnomia module
// (bounded by ModuleTimeout); the module's output goes to the service's
// log. A failure is a 422 naming the module, the operation and the
// module's standard error.
func (a *Agent) runModule(ctx context.Context, req agentapi.ActivateRequest, op string, replace bool) error {
	comp, err := a.componentPath(req)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(a.path("logs", req.Service.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	env := os.Environ()
	for _, k := range sortedKeys(req.Env) {
		if strings.HasPrefix(k, "DYDISNIX_") {
			env = append(env, k+"="+req.Env[k])
		}
	}
	container := req.Container
	if container == "" {
		container = req.Service.Type
	}
	typ := req.Service.Type
	if p := req.Service.Provider; p != nil {
		if typ, err = a.providerModule(p); err != nil {
			return err
		}
	}
	inv := &dysnomia.Invocation{Op: op, Component: comp, Container: container, Properties: req.ContainerProperties,
		Env: env, Store: a.dysnomiaStore(), Replace: replace, Output: logf}
	a.log.Info("running Dysnomia module", zap.String("service", req.Service.Name), zap.String("type", typ), zap.String("operation", op))
	if err := dysnomia.Run(ctx, typ, a.modulesPath(), a.cfg.ModuleTimeout, inv); err != nil {
		return &httpError{422, err.Error()}
	}
	return nil
}

// providerModule returns the path of the module of a service hosted in a
// container another service provides: the module inside the provider's
// component on this agent (components/<hash>-<provider>/<module>), which
// is there once the provider was activated.
func (a *Agent) providerModule(p *model.ContainerProvider) (string, error) {
	hexd := strings.TrimPrefix(p.Artifact, "sha256:")
	if !safeName.MatchString(p.Service) || !hexDigest.MatchString(hexd) || !filepath.IsLocal(p.Module) {
		return "", &httpError{400, fmt.Sprintf("container provider %q (artifact %q, module %q): expected a service name, sha256:<64 hex digits> and a relative module path", p.Service, p.Artifact, p.Module)}
	}
	dir := a.path("components", providerComponent(p))
	if _, err := os.Stat(dir); err != nil {
		return "", &httpError{422, fmt.Sprintf("container %s: the component of its provider %s is not on this target (the provider is activated first)", p.Container, p.Service)}
	}
	return filepath.Join(dir, p.Module), nil
}

// providerComponent is the base name of a provider's component directory.
func providerComponent(p *model.ContainerProvider) string {
	hexd := strings.TrimPrefix(p.Artifact, "sha256:")
	if len(hexd) < 32 {
		return noArtifact + "-" + p.Service
	}
	return hexd[:32] + "-" + p.Service
}

// saveMapping records the last activated mapping of a module-typed
// service (mappings/<service>.json), so that its state can be snapshotted,
// restored and collected after it was deactivated.
func (a *Agent) saveMapping(req agentapi.ActivateRequest) error {
	if err := os.MkdirAll(a.path("mappings"), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return model.WriteFileAtomic(a.path("mappings", req.Service.Name+".json"), b, 0o600)
}

// mappingOf returns the mapping whose module manages the state of
// service: given (from the request), else the active one, else the last
// recorded one; nil when the service is not run by a module (its state
// is the state directory).
func (a *Agent) mappingOf(service string, given *agentapi.ActivateRequest) *agentapi.ActivateRequest {
	if given != nil {
		if given.Service.Name == "" {
			given.Service.Name = service
		}
		if moduleType(given.Service.Type) && given.Service.Name == service {
			return given
		}
		return nil
	}
	a.mu.Lock()
	for _, k := range sortedKeys(a.profile) {
		if e := a.profile[k]; e.Req.Service.Name == service {
			req := e.Req
			a.mu.Unlock()
			if moduleType(req.Service.Type) {
				return &req
			}
			return nil
		}
	}
	a.mu.Unlock()
	b, err := os.ReadFile(a.path("mappings", service+".json"))
	if err != nil {
		return nil
	}
	var req agentapi.ActivateRequest
	if json.Unmarshal(b, &req) != nil || !moduleType(req.Service.Type) {
		return nil
	}
	return &req
}

// moduleEntries returns the active mappings run by modules, sorted by key.
func (a *Agent) moduleEntries() []agentapi.ActivateRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []agentapi.ActivateRequest
	for _, k := range sortedKeys(a.profile) {
		if e := a.profile[k]; moduleType(e.Req.Service.Type) {
			out = append(out, e.Req)
		}
	}
	return out
}

// lockModules runs the lock operation of every active module mapping;
// on a refusal the ones locked already are unlocked again.
func (a *Agent) lockModules(ctx context.Context) error {
	var done []agentapi.ActivateRequest
	for _, req := range a.moduleEntries() {
		if err := a.runModule(ctx, req, dysnomia.OpLock, false); err != nil {
			for _, d := range done {
				a.runModule(ctx, d, dysnomia.OpUnlock, false)
			}
			return err
		}
		done = append(done, req)
	}
	return nil
}

// unlockModules runs the unlock operation of every active module mapping.
func (a *Agent) unlockModules(ctx context.Context) error {
	var errs []error
	for _, req := range a.moduleEntries() {
		if err := a.runModule(ctx, req, dysnomia.OpUnlock, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// snapshotModule runs the module's snapshot operation and packs the
// newest generation of the component (its snapshot directory and
// checksum) as the transferable snapshot: a tarball of "checksum" and
// "<id>/...". A component without a generation packs an empty tarball.
func (a *Agent) snapshotModule(ctx context.Context, req agentapi.ActivateRequest, w io.Writer) error {
	if err := a.runModule(ctx, req, dysnomia.OpSnapshot, false); err != nil {
		return err
	}
	st := a.dysnomiaStore()
	c, x := componentKey(req)
	gz, _ := gzip.NewWriterLevel(w, gzip.NoCompression) // payloads are compressed by the modules
	tw := tar.NewWriter(gz)
	g, ok, err := st.Latest(c, x)
	if err != nil {
		return err
	}
	if ok {
		if err := st.Verify(c, x, g.ID); err != nil {
			return &httpError{422, fmt.Sprintf("snapshot %s: %v", req.Service.Name, err)}
		}
		sum, err := st.Checksum(c, x, g.ID)
		if err != nil {
			return err
		}
		if err := tarBytes(tw, "checksum", []byte(sum+"\n")); err != nil {
			return err
		}
		if err := tarDir(tw, st.SnapshotDir(c, x, g.ID), g.ID); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// componentKey is the (container, component) pair of a mapping in the store.
func componentKey(req agentapi.ActivateRequest) (string, string) {
	inv := dysnomia.Invocation{Container: req.Container, Component: req.Service.Name}
	if inv.Container == "" {
		inv.Container = req.Service.Type
	}
	return inv.ContainerName(), inv.ComponentName()
}

func tarBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// tarDir adds the regular files of dir (sorted, recursively) under prefix.
func tarDir(tw *tar.Writer, dir, prefix string) error {
	if err := tw.WriteHeader(&tar.Header{Name: prefix + "/", Mode: 0o700, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		name := prefix + "/" + e.Name()
		switch {
		case e.IsDir():
			if err := tarDir(tw, p, name); err != nil {
				return err
			}
		case e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreModule imports an extracted snapshot (dir holds "checksum" and
// "<id>/") into the Dysnomia store as the component's newest generation,
// after verifying the payload against the checksum (a snapshot that
// fails it is never restored), then runs the module's restore.
func (a *Agent) restoreModule(ctx context.Context, req agentapi.ActivateRequest, dir string, replace bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var id string
	for _, e := range ents {
		if e.IsDir() {
			if id != "" {
				return &httpError{422, fmt.Sprintf("restore %s: the snapshot holds more than one snapshot directory", req.Service.Name)}
			}
			id = e.Name()
		}
	}
	if id != "" {
		sum, err := os.ReadFile(filepath.Join(dir, "checksum"))
		if err != nil {
			return &httpError{422, fmt.Sprintf("restore %s: the snapshot has no checksum", req.Service.Name)}
		}
		checksum := strings.TrimSpace(string(sum))
		if checksum != "" {
			if err := dysnomia.VerifyDir(filepath.Join(dir, id), checksum); err != nil {
				return &httpError{422, fmt.Sprintf("restore %s: %v: not restored", req.Service.Name, err)}
			}
		}
		c, x := componentKey(req)
		st := a.dysnomiaStore()
		if err := os.MkdirAll(st.Dir, 0o700); err != nil {
			return err
		}
		if err := st.Import(c, x, filepath.Join(dir, id), id, checksum); err != nil {
			return err
		}
	}
	return a.runModule(ctx, req, dysnomia.OpRestore, replace)
}

// DysnomiaSnapshots answers a query of the agent's Dysnomia snapshot
// store (query-all, query-latest, resolve, gc), as dysnomia-snapshots.
func (a *Agent) DysnomiaSnapshots(q agentapi.SnapshotsQuery) (agentapi.SnapshotsResult, error) {
	st := a.dysnomiaStore()
	var paths []string
	var err error
	switch q.Op {
	case agentapi.QueryAll:
		paths, err = st.QueryAll(q.Container, q.Component, q.Check)
	case agentapi.QueryLatest:
		paths, err = st.QueryLatest(q.Container, q.Component, q.Check)
	case agentapi.QueryResolve:
		for _, p := range q.Paths {
			abs, rerr := st.Resolve(p)
			if rerr != nil {
				return agentapi.SnapshotsResult{}, &httpError{404, rerr.Error()}
			}
			paths = append(paths, abs)
		}
	case agentapi.QueryGC:
		a.opMu.Lock()
		paths, err = st.GC(q.Keep, q.Container, q.Component)
		a.opMu.Unlock()
	default:
		return agentapi.SnapshotsResult{}, &httpError{400, fmt.Sprintf("dysnomia-snapshots: unknown operation %q (query-all, query-latest, resolve, gc)", q.Op)}
	}
	if err != nil {
		return agentapi.SnapshotsResult{}, &httpError{422, err.Error()}
	}
	if paths == nil {
		paths = []string{}
	}
	return agentapi.SnapshotsResult{Paths: paths}, nil
}

// collectComponents removes the unpacked components that neither an
// active mapping nor a recorded mapping (a service whose state is kept)
// uses; it returns how many it removed. The caller holds opMu.
func (a *Agent) collectComponents() int {
	used := map[string]bool{}
	mark := func(req agentapi.ActivateRequest) {
		h := noArtifact
		if d := strings.TrimPrefix(req.Service.Artifact, "sha256:"); len(d) == 64 {
			h = d[:32]
		}
		used[h+"-"+req.Service.Name] = true
		if p := req.Service.Provider; p != nil {
			used[providerComponent(p)] = true // its module manages the state
		}
	}
	a.mu.Lock()
	for _, e := range a.profile {
		mark(e.Req)
	}
	a.mu.Unlock()
	recs, _ := os.ReadDir(a.path("mappings"))
	for _, r := range recs {
		var req agentapi.ActivateRequest
		if b, err := os.ReadFile(a.path("mappings", r.Name())); err == nil && json.Unmarshal(b, &req) == nil {
			mark(req)
		}
	}
	n := 0
	ents, _ := os.ReadDir(a.path("components"))
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !used[e.Name()] {
			if os.RemoveAll(a.path("components", e.Name())) == nil {
				n++
			}
		}
	}
	return n
}
