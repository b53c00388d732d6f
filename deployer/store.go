package deployer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// Store is the coordinator's state directory:
//
//	manifests/<N>.json                     manifest generations (atomic writes)
//	snapshots/<service>/<hex>.tar.gz       the snapshot store
//	snapshots/<service>/generations.json   its generations, oldest first
//	lock                                   flock held while a deployment runs
type Store struct {
	// Dir is the state directory.
	Dir string
	// Keep is the number of snapshot generations kept per service (default 3).
	Keep int
}

// OpenStore creates (if needed) and opens a coordinator state directory.
func OpenStore(dir string, keep int) (*Store, error) {
	if keep <= 0 {
		keep = 3
	}
	for _, d := range []string{"manifests", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("state dir %s: %w", dir, err)
		}
	}
	return &Store{Dir: dir, Keep: keep}, nil
}

// Lock takes an exclusive lock on the state directory so that two
// deployments never run at once; it fails at once when it is held.
func (s *Store) Lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state dir %s is locked by another deployment: %w", s.Dir, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Generations returns the manifest generation numbers, ascending.
func (s *Store) Generations() ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "manifests"))
	if err != nil {
		return nil, fmt.Errorf("list generations: %w", err)
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".json"))
		if err == nil && strings.HasSuffix(e.Name(), ".json") && n > 0 {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// Manifest reads generation gen.
func (s *Store) Manifest(gen int) (*model.Manifest, error) {
	m, err := model.ReadManifest(s.ManifestPath(gen))
	if err != nil {
		return nil, err
	}
	m.Generation = gen
	return m, nil
}

// ManifestPath is the file of manifest generation gen.
func (s *Store) ManifestPath(gen int) string {
	return filepath.Join(s.Dir, "manifests", strconv.Itoa(gen)+".json")
}

// Latest returns the newest manifest generation, or nil when there is none.
func (s *Store) Latest() (*model.Manifest, error) {
	gens, err := s.Generations()
	if err != nil || len(gens) == 0 {
		return nil, err
	}
	return s.Manifest(gens[len(gens)-1])
}

// SaveManifest installs m as the newest generation and returns its
// number; when m equals the newest generation nothing is written (an
// identical redeployment creates no generation).
func (s *Store) SaveManifest(m *model.Manifest) (int, error) {
	latest, err := s.Latest()
	if err != nil {
		return 0, err
	}
	if latest != nil && latest.Equivalent(m) {
		m.Generation = latest.Generation
		return latest.Generation, nil
	}
	gen := 1
	if latest != nil {
		gen = latest.Generation + 1
	}
	c := *m
	c.Generation = gen
	// 0600: the infrastructure may carry augmented secrets.
	data, err := model.MarshalManifest(&c)
	if err != nil {
		return 0, err
	}
	if err := model.WriteFileAtomic(s.ManifestPath(gen), data, 0o600); err != nil {
		return 0, err
	}
	m.Generation = gen
	return gen, nil
}

var storeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// Snapshots returns a service's snapshot generations in the store, oldest first.
func (s *Store) Snapshots(service string) ([]agentapi.SnapshotInfo, error) {
	if !storeName.MatchString(service) {
		return nil, fmt.Errorf("snapshot store: bad service name %q", service)
	}
	var gens []agentapi.SnapshotInfo
	b, err := os.ReadFile(filepath.Join(s.Dir, "snapshots", service, "generations.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &gens); err != nil {
		return nil, fmt.Errorf("snapshot store %s: %w", service, err)
	}
	return gens, nil
}

// SnapshotPath returns the file of a snapshot in the store.
func (s *Store) SnapshotPath(service, digest string) string {
	return filepath.Join(s.Dir, "snapshots", service, strings.TrimPrefix(digest, "sha256:")+".tar.gz")
}

// LatestSnapshot returns the newest snapshot of a service, ok false when there is none.
func (s *Store) LatestSnapshot(service string) (agentapi.SnapshotInfo, bool, error) {
	gens, err := s.Snapshots(service)
	if err != nil || len(gens) == 0 {
		return agentapi.SnapshotInfo{}, false, err
	}
	return gens[len(gens)-1], true, nil
}

// SnapshotTime returns when the newest snapshot of a service was stored
// (its file's modification time: storing a snapshot identical to the
// newest one renews it); ok false when there is none.
func (s *Store) SnapshotTime(service string) (t time.Time, ok bool, err error) {
	info, ok, err := s.LatestSnapshot(service)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	fi, err := os.Stat(s.SnapshotPath(service, info.Digest))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("snapshot store %s: %w", service, err)
	}
	return fi.ModTime(), true, nil
}

// PutSnapshot reads a snapshot into the store, verifies it against digest
// ("sha256:<hex>", or "" to compute it) and makes it the newest
// generation (unless it is already), dropping generations beyond Keep.
func (s *Store) PutSnapshot(service, digest string, r io.Reader) (agentapi.SnapshotInfo, error) {
	if !storeName.MatchString(service) {
		return agentapi.SnapshotInfo{}, fmt.Errorf("snapshot store: bad service name %q", service)
	}
	dir := filepath.Join(s.Dir, "snapshots", service)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	tmp, err := os.CreateTemp(dir, ".in-*")
	if err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Sync()
	}
	tmp.Close()
	if err != nil {
		return agentapi.SnapshotInfo{}, fmt.Errorf("snapshot store %s: %w", service, err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if digest != "" && got != digest {
		return agentapi.SnapshotInfo{}, fmt.Errorf("snapshot of %s corrupted in transfer: %s, expected %s", service, got, digest)
	}
	if err := os.Rename(tmp.Name(), s.SnapshotPath(service, got)); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	gens, err := s.Snapshots(service)
	if err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	info := agentapi.SnapshotInfo{Service: service, Digest: got, Size: n, Generation: 1}
	if k := len(gens); k > 0 {
		if gens[k-1].Digest == got {
			return gens[k-1], nil
		}
		info.Generation = gens[k-1].Generation + 1
	}
	gens = append(gens, info)
	if len(gens) > s.Keep {
		kept := map[string]bool{}
		for _, g := range gens[len(gens)-s.Keep:] {
			kept[g.Digest] = true
		}
		for _, g := range gens[:len(gens)-s.Keep] {
			if !kept[g.Digest] {
				os.Remove(s.SnapshotPath(service, g.Digest))
			}
		}
		gens = append([]agentapi.SnapshotInfo(nil), gens[len(gens)-s.Keep:]...)
	}
	b, _ := json.MarshalIndent(gens, "", "  ")
	if err := model.WriteFileAtomic(filepath.Join(dir, "generations.json"), b, 0o600); err != nil {
		return agentapi.SnapshotInfo{}, err
	}
	return info, nil
}

// Renew makes the newest snapshot of service count as stored now when its
// digest is digest ("sha256:<hex>") and its file is present whole, and reports
// whether it did: a snapshot round over unchanged state then copies
// nothing (the same as storing it again, without the transfer).
func (s *Store) Renew(service, digest string) (agentapi.SnapshotInfo, bool, error) {
	info, ok, err := s.LatestSnapshot(service)
	if err != nil || !ok || info.Digest != digest {
		return agentapi.SnapshotInfo{}, false, err
	}
	// A file cut short is not renewed: storing the snapshot again
	// replaces it.
	file := s.SnapshotPath(service, digest)
	if fi, err := os.Stat(file); err != nil || fi.Size() != info.Size {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return agentapi.SnapshotInfo{}, false, nil
		}
		return agentapi.SnapshotInfo{}, false, fmt.Errorf("snapshot store %s: %w", service, err)
	}
	now := time.Now()
	if err := os.Chtimes(file, now, now); err != nil {
		return agentapi.SnapshotInfo{}, false, fmt.Errorf("snapshot store %s: %w", service, err)
	}
	return info, true, nil
}

// SnapshotServices lists the services that have snapshots in the store.
func (s *Store) SnapshotServices() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "snapshots"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// SnapshotPaths lists the snapshots in the store as paths relative to
// its snapshots/ directory (SERVICE/HEX.tar.gz), oldest generation first
// per service; latest: only the newest of each; service filters ("" = all).
func (s *Store) SnapshotPaths(service string, latest bool) ([]string, error) {
	svcs, err := s.SnapshotServices()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, svc := range svcs {
		if service != "" && svc != service {
			continue
		}
		gens, err := s.Snapshots(svc)
		if err != nil {
			return nil, err
		}
		if latest && len(gens) > 0 {
			gens = gens[len(gens)-1:]
		}
		for _, g := range gens {
			out = append(out, svc+"/"+strings.TrimPrefix(g.Digest, "sha256:")+".tar.gz")
		}
	}
	return out, nil
}

// ResolveSnapshot returns the absolute path of a snapshot named by its
// relative path (SERVICE/HEX.tar.gz, as SnapshotPaths lists it).
func (s *Store) ResolveSnapshot(rel string) (string, error) {
	svc, file, ok := strings.Cut(rel, "/")
	hexd := strings.TrimSuffix(file, ".tar.gz")
	if !ok || !storeName.MatchString(svc) || len(hexd) != 64 || strings.Trim(hexd, "0123456789abcdef") != "" {
		return "", fmt.Errorf("resolve %q: expected SERVICE/HEX.tar.gz", rel)
	}
	p, err := filepath.Abs(s.SnapshotPath(svc, hexd))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("resolve %s: not in the store %s", rel, s.Dir)
	}
	return p, nil
}

// TrimSnapshots keeps the newest keep generations of every service's
// snapshots (service filters, "" = all) and removes the others' files;
// it returns the relative paths removed.
func (s *Store) TrimSnapshots(keep int, service string) ([]string, error) {
	if keep < 0 {
		return nil, fmt.Errorf("--keep must not be negative")
	}
	svcs, err := s.SnapshotServices()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, svc := range svcs {
		if service != "" && svc != service {
			continue
		}
		gens, err := s.Snapshots(svc)
		if err != nil || len(gens) <= keep {
			if err != nil {
				return removed, err
			}
			continue
		}
		kept := map[string]bool{}
		for _, g := range gens[len(gens)-keep:] {
			kept[g.Digest] = true
		}
		for _, g := range gens[:len(gens)-keep] {
			if !kept[g.Digest] {
				if err := os.Remove(s.SnapshotPath(svc, g.Digest)); err == nil {
					removed = append(removed, svc+"/"+strings.TrimPrefix(g.Digest, "sha256:")+".tar.gz")
				}
			}
		}
		b, _ := json.MarshalIndent(append([]agentapi.SnapshotInfo{}, gens[len(gens)-keep:]...), "", "  ")
		if err := model.WriteFileAtomic(filepath.Join(s.Dir, "snapshots", svc, "generations.json"), b, 0o600); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
