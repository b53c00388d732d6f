package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

func lookPath(exe string) (string, error) { return exec.LookPath(exe) }

// PutArtifact stores an uploaded artifact after verifying its digest.
func (a *Agent) PutArtifact(hexd string, r io.Reader) error {
	if !hexDigest.MatchString(hexd) {
		return &httpError{400, "artifact digest: expected 64 lower-case hex digits"}
	}
	dst := a.path("artifacts", hexd)
	if _, err := os.Stat(dst); err == nil {
		io.Copy(io.Discard, r)
		return nil
	}
	if err := receiveVerified(dst, hexd, r, 0o755, a.cfg.MaxUpload); err != nil {
		return err
	}
	return nil
}

// HasArtifact reports whether the artifact is present.
func (a *Agent) HasArtifact(hexd string) bool {
	if !hexDigest.MatchString(hexd) {
		return false
	}
	_, err := os.Stat(a.path("artifacts", hexd))
	return err == nil
}

// receiveVerified writes r to dst (via a temp file, fsync, rename) only if
// its sha256 equals hexd and it holds at most limit bytes (413 otherwise).
func receiveVerified(dst, hexd string, r io.Reader, perm os.FileMode, limit int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	lr := &io.LimitedReader{R: r, N: limit + 1}
	if _, err := io.Copy(io.MultiWriter(tmp, h), lr); err != nil {
		tmp.Close()
		return fmt.Errorf("receive: %w", err)
	}
	if lr.N == 0 {
		tmp.Close()
		return uploadTooLarge(limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexd {
		tmp.Close()
		return &httpError{422, fmt.Sprintf("digest mismatch: got sha256:%s, expected sha256:%s", got, hexd)}
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func uploadTooLarge(limit int64) error {
	return &httpError{413, fmt.Sprintf("upload larger than %d bytes (the agent's --max-upload limit)", limit)}
}

func (a *Agent) checkService(name string) error {
	if !safeName.MatchString(name) {
		return &httpError{400, fmt.Sprintf("service name %q: expected letters, digits, '.', '_', '+', '-'", name)}
	}
	return nil
}

func (a *Agent) activeService(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.profile {
		if e.Req.Service.Name == name && e.proc != nil {
			if _, running, _ := e.proc.status(); running {
				return true
			}
		}
	}
	return false
}

func (a *Agent) generations(service string) []agentapi.SnapshotInfo {
	var gens []agentapi.SnapshotInfo
	b, err := os.ReadFile(a.path("snapshots", service, "generations.json"))
	if err == nil {
		json.Unmarshal(b, &gens)
	}
	return gens
}

func (a *Agent) saveGenerations(service string, gens []agentapi.SnapshotInfo) error {
	b, err := json.MarshalIndent(gens, "", "  ")
	if err != nil {
		return err
	}
	return model.WriteFileAtomic(a.path("snapshots", service, "generations.json"), b, 0o600)
}

// addGeneration appends a generation unless the newest already has the
// digest, then drops generations beyond Keep (and their files).
func (a *Agent) addGeneration(info agentapi.SnapshotInfo) (agentapi.SnapshotInfo, error) {
	gens := a.generations(info.Service)
	if n := len(gens); n > 0 && gens[n-1].Digest == info.Digest {
		return gens[n-1], nil
	}
	info.Generation = 1
	if n := len(gens); n > 0 {
		info.Generation = gens[n-1].Generation + 1
	}
	gens = append(gens, info)
	gens = a.trim(info.Service, gens, a.cfg.Keep)
	return info, a.saveGenerations(info.Service, gens)
}

func (a *Agent) trim(service string, gens []agentapi.SnapshotInfo, keep int) []agentapi.SnapshotInfo {
	if len(gens) <= keep {
		return gens
	}
	drop, kept := gens[:len(gens)-keep], gens[len(gens)-keep:]
	inKept := map[string]bool{}
	for _, g := range kept {
		inKept[g.Digest] = true
	}
	for _, g := range drop {
		if !inKept[g.Digest] {
			os.Remove(a.path("snapshots", service, strings.TrimPrefix(g.Digest, "sha256:")+".tar.gz"))
		}
	}
	return append([]agentapi.SnapshotInfo(nil), kept...)
}

// Snapshot writes a gzip tarball of the service's state into the
// snapshot store and returns its generation. The state of a service run
// by a Dysnomia module is what its module's snapshot operation writes
// (the newest generation of the component in the Dysnomia store, packed
// with its checksum); that of the others is their state directory.
func (a *Agent) Snapshot(ctx context.Context, req agentapi.ServiceRequest) (agentapi.SnapshotInfo, error) {
	service := req.Service
	if err := a.checkService(service); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if m := a.mappingOf(service, req.Mapping); m != nil {
		return a.storeSnapshot(service, func(w io.Writer) error { return a.snapshotModule(ctx, *m, w) })
	}
	src := a.path("state", service)
	// A service that never wrote anything has an empty state: snapshot that.
	if err := os.MkdirAll(src, 0o700); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	return a.storeSnapshot(service, func(w io.Writer) error { return agentapi.WriteTarball(w, src, gzip.BestSpeed) })
}

// storeSnapshot writes a snapshot with write into the snapshot store
// (named by its sha256) as the service's newest generation.
func (a *Agent) storeSnapshot(service string, write func(io.Writer) error) (agentapi.SnapshotInfo, error) {
	dir := a.path("snapshots", service)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	tmp, err := os.CreateTemp(dir, ".snapshot-*")
	if err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if err := write(io.MultiWriter(tmp, h)); err != nil {
		tmp.Close()
		return agentapi.SnapshotInfo{}, fmt.Errorf("snapshot %s: %w", service, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return agentapi.SnapshotInfo{}, err
	}
	fi, _ := tmp.Stat()
	tmp.Close()
	hexd := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), filepath.Join(dir, hexd+".tar.gz")); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	return a.addGeneration(agentapi.SnapshotInfo{Service: service, Digest: "sha256:" + hexd, Size: fi.Size()})
}

// extractLimits bounds what one extraction may write.
type extractLimits struct {
	bytes   int64 // sum of the regular files' sizes
	entries int   // number of entries
}

// extractTarball unpacks a snapshot into dir. Every entry is created
// through an os.Root opened on dir, so that no name, symlink (or chain of
// symlinks) or hard link can create or modify anything outside dir; names
// and link targets that leave dir lexically are refused outright. The
// archive's entries and their sizes are checked against lim before
// anything of the entry is written. Errors caused by the archive's
// content are *httpError (422, or 413 for a limit).
func extractTarball(r io.Reader, dir string, lim extractLimits) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return &httpError{422, fmt.Sprintf("snapshot is not a gzip stream: %v", err)}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(gz)
	var written int64
	for n := 1; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &httpError{422, fmt.Sprintf("snapshot: entry %d: %v", n, err)}
		}
		if n > lim.entries {
			return &httpError{413, fmt.Sprintf("snapshot has more than %d entries (the agent's --max-entries limit)", lim.entries)}
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return &httpError{422, fmt.Sprintf("snapshot entry %q leaves the state directory", hdr.Name)}
		}
		bad := func(err error) error {
			return &httpError{422, fmt.Sprintf("snapshot entry %q: %v", hdr.Name, err)}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return bad(err)
			}
		case tar.TypeReg:
			if hdr.Size < 0 || hdr.Size > lim.bytes-written {
				return &httpError{413, fmt.Sprintf("snapshot entry %q (%d bytes) exceeds the extraction limit of %d bytes (the agent's --max-extract limit)", hdr.Name, hdr.Size, lim.bytes)}
			}
			written += hdr.Size
			if err := root.MkdirAll(filepath.Dir(name), 0o700); err != nil {
				return bad(err)
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(hdr.Mode)&0o777)
			if err != nil {
				return bad(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return bad(err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(hdr.Linkname) || strings.HasPrefix(filepath.Clean(filepath.Join(filepath.Dir(name), hdr.Linkname)), "..") {
				return &httpError{422, fmt.Sprintf("snapshot symlink %q points outside the state directory", hdr.Name)}
			}
			if err := root.MkdirAll(filepath.Dir(name), 0o700); err != nil {
				return bad(err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return bad(err)
			}
		case tar.TypeLink:
			if err := root.MkdirAll(filepath.Dir(name), 0o700); err != nil {
				return bad(err)
			}
			if err := root.Link(filepath.FromSlash(hdr.Linkname), name); err != nil {
				return bad(err)
			}
		default:
			return &httpError{422, fmt.Sprintf("snapshot entry %q: type %q is not supported (directories, regular files, symlinks and hard links only)", hdr.Name, hdr.Typeflag)}
		}
	}
}

// SnapshotFile returns the path of a snapshot the agent holds.
func (a *Agent) SnapshotFile(service, hexd string) (string, error) {
	if err := a.checkService(service); err != nil {
		return "", err
	}
	if !hexDigest.MatchString(hexd) {
		return "", &httpError{400, "snapshot digest: expected 64 lower-case hex digits"}
	}
	p := a.path("snapshots", service, hexd+".tar.gz")
	if _, err := os.Stat(p); err != nil {
		return "", &httpError{404, fmt.Sprintf("no snapshot sha256:%s of %s", hexd, service)}
	}
	return p, nil
}

// PutSnapshot stores an uploaded snapshot (digest verified) as the newest generation.
func (a *Agent) PutSnapshot(service, hexd string, r io.Reader) error {
	if err := a.checkService(service); err != nil {
		return err
	}
	if !hexDigest.MatchString(hexd) {
		return &httpError{400, "snapshot digest: expected 64 lower-case hex digits"}
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	dir := a.path("snapshots", service)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(dir, hexd+".tar.gz")
	if err := receiveVerified(dst, hexd, r, 0o600, a.cfg.MaxUpload); err != nil {
		return err
	}
	fi, _ := os.Stat(dst)
	_, err := a.addGeneration(agentapi.SnapshotInfo{Service: service, Digest: "sha256:" + hexd, Size: fi.Size()})
	return err
}

// Restore verifies a snapshot's digest and replaces the service's state
// directory with its content. The service must not be running. For a
// service run by a Dysnomia module, the snapshot is imported into the
// Dysnomia store as the component's newest generation (its checksum
// verified first) and the module's restore operation loads it
// (req.Replace: existing data may be replaced).
func (a *Agent) Restore(ctx context.Context, req agentapi.RestoreRequest) error {
	service := req.Service
	hexd := strings.TrimPrefix(req.Digest, "sha256:")
	file, err := a.SnapshotFile(service, hexd)
	if err != nil {
		return err
	}
	if a.activeService(service) {
		return &httpError{409, fmt.Sprintf("restore %s: the service is running; deactivate it first", service)}
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	got, err := fileHex(file)
	if err != nil {
		return err
	}
	if got != hexd {
		return &httpError{422, fmt.Sprintf("restore %s: snapshot corrupt: sha256:%s, expected sha256:%s", service, got, hexd)}
	}
	m := a.mappingOf(service, req.Mapping)
	stateRoot := a.path("state")
	if m != nil {
		stateRoot = a.path("dysnomia", "tmp")
		if err := os.MkdirAll(stateRoot, 0o700); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(stateRoot, "."+service+".restore-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	err = extractTarball(f, tmp, extractLimits{bytes: a.cfg.MaxExtract, entries: a.cfg.MaxEntries})
	f.Close()
	var he *httpError
	if errors.As(err, &he) {
		return &httpError{he.code, fmt.Sprintf("restore %s: %s", service, he.msg)}
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", service, err)
	}
	if m != nil {
		return a.restoreModule(ctx, *m, tmp, req.Replace)
	}
	dst := a.path("state", service)
	old := dst + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dst); err == nil {
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Rename(old, dst)
		return err
	}
	os.RemoveAll(old)
	if d, err := os.Open(stateRoot); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func fileHex(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DeleteState removes the state directory of a service that is not
// active; for a service run by a Dysnomia module, its module's
// collect-garbage operation deletes the state (when marked as garbage).
func (a *Agent) DeleteState(ctx context.Context, service string) error {
	if err := a.checkService(service); err != nil {
		return err
	}
	a.mu.Lock()
	for _, e := range a.profile {
		if e.Req.Service.Name == service {
			a.mu.Unlock()
			return &httpError{409, fmt.Sprintf("delete state of %s: the service is active", service)}
		}
	}
	delete(a.garbage, service)
	err := a.saveProfile()
	a.mu.Unlock()
	if err != nil {
		return err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if m := a.mappingOf(service, nil); m != nil {
		if err := a.runModule(ctx, *m, "collect-garbage", false); err != nil {
			return err
		}
		// Its state is gone: its component may be collected.
		os.Remove(a.path("mappings", service+".json"))
	}
	return os.RemoveAll(a.path("state", service))
}

// CollectGarbage removes artifacts no active service uses, snapshot
// generations beyond keep and, with DeleteState, the state of services
// marked as garbage.
func (a *Agent) CollectGarbage(ctx context.Context, req agentapi.GCRequest) (agentapi.GCResult, error) {
	var res agentapi.GCResult
	keep := req.Keep
	if keep <= 0 {
		keep = a.cfg.Keep
	}
	a.mu.Lock()
	used := map[string]bool{}
	for _, e := range a.profile {
		used[strings.TrimPrefix(e.Req.Service.Artifact, "sha256:")] = true
	}
	garbage := sortedKeys(a.garbage)
	a.mu.Unlock()
	a.opMu.Lock()
	ents, _ := os.ReadDir(a.path("artifacts"))
	for _, e := range ents {
		if hexDigest.MatchString(e.Name()) && !used[e.Name()] {
			if os.Remove(a.path("artifacts", e.Name())) == nil {
				res.Artifacts++
			}
		}
	}
	res.Artifacts += a.collectComponents()
	svcs, _ := os.ReadDir(a.path("snapshots"))
	for _, s := range svcs {
		gens := a.generations(s.Name())
		if len(gens) > keep {
			res.Snapshots += len(gens) - keep
			a.saveGenerations(s.Name(), a.trim(s.Name(), gens, keep))
		}
	}
	a.opMu.Unlock()
	if req.DeleteState {
		for _, g := range garbage {
			if a.DeleteState(ctx, g) == nil {
				res.States++
			}
		}
	}
	return res, nil
}
