// Package dysnomia implements the Dysnomia module contract on a target:
// the snapshot store layout under DYSNOMIA_STATEDIR, the resolution and
// invocation of modules (`<module> <operation> <componentPath>
// <containerName>` with the container's properties in the environment)
// and the agent's built-in modules (wrapper, mysql-database,
// postgresql-database, fileset).
//
// Store layout (as Dysnomia's, for container C and component X):
//
//	snapshots/C/X/<id>/...    a snapshot (payload files)
//	generations/C/X/<n>       symlink -> ../../../snapshots/C/X/<id>, n = 1, 2, ...
//	checksums/C/X/<id>        "sha256:<hex>" of the payload (one file), or sha256sum lines
//	activated/C/X             marker: the component is active in the container
//	garbage/C/X               marker: deactivated, its state may be deleted
package dysnomia

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Store is a Dysnomia snapshot store (DYSNOMIA_STATEDIR).
type Store struct {
	// Dir is the store's root.
	Dir string
}

var storeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

func checkNames(names ...string) error {
	for _, n := range names {
		if !storeName.MatchString(n) {
			return fmt.Errorf("dysnomia store: bad name %q: expected letters, digits, '.', '_', '+', '-'", n)
		}
	}
	return nil
}

// Generation is one snapshot generation of a component.
type Generation struct {
	// N is the generation number (1, 2, ...).
	N int
	// ID is the snapshot id (the directory name under snapshots/C/X).
	ID string
}

// Rel is the relative snapshot path C/X/<id>, as Dysnomia uses on the wire.
func Rel(container, component, id string) string {
	return container + "/" + component + "/" + id
}

// SnapshotDir is the directory of snapshot id of component X in container C.
func (s Store) SnapshotDir(c, x, id string) string {
	return filepath.Join(s.Dir, "snapshots", c, x, id)
}

func (s Store) marker(kind, c, x string) string { return filepath.Join(s.Dir, kind, c, x) }

// Generations returns the generations of a component, oldest first.
func (s Store) Generations(c, x string) ([]Generation, error) {
	if err := checkNames(c, x); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, "generations", c, x)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dysnomia store: %w", err)
	}
	var out []Generation
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= 0 {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, Generation{N: n, ID: filepath.Base(target)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out, nil
}

// Latest returns the newest generation of a component; ok is false when
// there is none.
func (s Store) Latest(c, x string) (g Generation, ok bool, err error) {
	gens, err := s.Generations(c, x)
	if err != nil || len(gens) == 0 {
		return Generation{}, false, err
	}
	return gens[len(gens)-1], true, nil
}

// Import moves the directory src into the store as snapshot id of the
// component (unless the store has it already: then src is removed),
// records its checksum ("" = none) and adds a generation link unless the
// newest generation is that snapshot already.
func (s Store) Import(c, x, src, id, checksum string) error {
	if err := checkNames(c, x, id); err != nil {
		return err
	}
	dst := s.SnapshotDir(c, x, id)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		os.RemoveAll(src)
	} else if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("dysnomia store: import %s: %w", Rel(c, x, id), err)
	}
	if checksum != "" {
		file := filepath.Join(s.Dir, "checksums", c, x, id)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return fmt.Errorf("dysnomia store: %w", err)
		}
		if err := writeAtomic(file, []byte(checksum+"\n")); err != nil {
			return err
		}
	}
	return s.AddGeneration(c, x, id)
}

// AddGeneration adds a generation link to snapshot id unless the newest
// generation points to it already.
func (s Store) AddGeneration(c, x, id string) error {
	g, ok, err := s.Latest(c, x)
	if err != nil {
		return err
	}
	if ok && g.ID == id {
		return nil
	}
	n := 1
	if ok {
		n = g.N + 1
	}
	dir := filepath.Join(s.Dir, "generations", c, x)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	link := filepath.Join(dir, strconv.Itoa(n))
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("..", "..", "..", "snapshots", c, x, id), tmp); err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	return nil
}

// Checksum returns the recorded checksum of a snapshot ("" when none was recorded).
func (s Store) Checksum(c, x, id string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, "checksums", c, x, id))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("dysnomia store: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Verify checks the payload of a snapshot against its recorded checksum:
// "sha256:<hex>" of the snapshot's only file, or sha256sum lines ("<hex>
// <name>") naming files of the snapshot. A snapshot without a recorded
// checksum passes; one that does not match is an error that must stop a
// restore.
func (s Store) Verify(c, x, id string) error {
	sum, err := s.Checksum(c, x, id)
	if err != nil || sum == "" {
		return err
	}
	return VerifyDir(s.SnapshotDir(c, x, id), sum)
}

// VerifyDir checks the files of a snapshot directory against checksum
// (see Verify).
func VerifyDir(dir, checksum string) error {
	fail := func(name, got, want string) error {
		return fmt.Errorf("snapshot %s fails its checksum: %s is sha256:%s, recorded %s", dir, name, got, want)
	}
	if strings.HasPrefix(checksum, "sha256:") {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("verify snapshot: %w", err)
		}
		if len(ents) != 1 || !ents[0].Type().IsRegular() {
			return fmt.Errorf("snapshot %s: a sha256:<hex> checksum needs exactly one payload file, found %d entries", dir, len(ents))
		}
		got, err := HashFile(filepath.Join(dir, ents[0].Name()))
		if err != nil {
			return err
		}
		if "sha256:"+got != checksum {
			return fail(ents[0].Name(), got, checksum)
		}
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(checksum))
	checked := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || len(f[0]) != 64 {
			return fmt.Errorf("snapshot %s: checksum line %q: expected \"sha256:<hex>\" or \"<hex>  <file>\"", dir, sc.Text())
		}
		name := strings.TrimPrefix(f[1], "*")
		if filepath.IsAbs(name) || strings.Contains(name, "..") {
			name = filepath.Base(name)
		}
		got, err := HashFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if got != f[0] {
			return fail(name, got, f[0])
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("snapshot %s: empty checksum", dir)
	}
	return nil
}

// HashFile returns the sha256 (hex) of a file, read as a stream.
func HashFile(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("checksum: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checksum %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MarkActive records that the component is active (and not garbage).
func (s Store) MarkActive(c, x string) error {
	os.Remove(s.marker("garbage", c, x))
	return touch(s.marker("activated", c, x))
}

// MarkGarbage records that the component was deactivated: its state may be deleted.
func (s Store) MarkGarbage(c, x string) error {
	os.Remove(s.marker("activated", c, x))
	return touch(s.marker("garbage", c, x))
}

// UnmarkGarbage removes the garbage marker (the state was deleted).
func (s Store) UnmarkGarbage(c, x string) {
	os.Remove(s.marker("garbage", c, x))
}

// IsGarbage reports whether the component is marked as garbage.
func (s Store) IsGarbage(c, x string) bool {
	_, err := os.Stat(s.marker("garbage", c, x))
	return err == nil
}

func touch(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	return f.Close()
}

func writeAtomic(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("dysnomia store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("dysnomia store: %w", err)
	}
	return os.Rename(tmp.Name(), file)
}

// components lists the (container, component) pairs with generations,
// filtered by container and component ("" = all), sorted.
func (s Store) components(container, component string) ([][2]string, error) {
	var out [][2]string
	cs, err := os.ReadDir(filepath.Join(s.Dir, "generations"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dysnomia store: %w", err)
	}
	for _, c := range cs {
		if !c.IsDir() || (container != "" && c.Name() != container) {
			continue
		}
		xs, err := os.ReadDir(filepath.Join(s.Dir, "generations", c.Name()))
		if err != nil {
			return nil, fmt.Errorf("dysnomia store: %w", err)
		}
		for _, x := range xs {
			if x.IsDir() && (component == "" || x.Name() == component) {
				out = append(out, [2]string{c.Name(), x.Name()})
			}
		}
	}
	return out, nil
}

// QueryAll returns the relative paths (C/X/<id>) of every generation of
// the components matching the filters ("" = all), oldest first per
// component; with check, each snapshot is verified against its checksum.
func (s Store) QueryAll(container, component string, check bool) ([]string, error) {
	return s.query(container, component, check, false)
}

// QueryLatest returns the relative path of the newest generation of each
// component matching the filters.
func (s Store) QueryLatest(container, component string, check bool) ([]string, error) {
	return s.query(container, component, check, true)
}

func (s Store) query(container, component string, check, latest bool) ([]string, error) {
	comps, err := s.components(container, component)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, cx := range comps {
		gens, err := s.Generations(cx[0], cx[1])
		if err != nil {
			return nil, err
		}
		if latest && len(gens) > 0 {
			gens = gens[len(gens)-1:]
		}
		for _, g := range gens {
			if check {
				if err := s.Verify(cx[0], cx[1], g.ID); err != nil {
					return out, err
				}
			}
			out = append(out, Rel(cx[0], cx[1], g.ID))
		}
	}
	return out, nil
}

// Resolve returns the absolute path of a relative snapshot path C/X/<id>;
// a path that is not of that form, or absent from the store, is an error.
func (s Store) Resolve(rel string) (string, error) {
	parts := strings.Split(rel, "/")
	if len(parts) != 3 || checkNames(parts...) != nil {
		return "", fmt.Errorf("resolve %q: expected CONTAINER/COMPONENT/ID", rel)
	}
	p := s.SnapshotDir(parts[0], parts[1], parts[2])
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("resolve %s: not in the store %s", rel, s.Dir)
	}
	return p, nil
}

// GC keeps the newest keep generations of every component matching the
// filters: older generation links are removed, and snapshots (and their
// checksums) no kept generation refers to. It returns the relative paths
// of the snapshots removed.
func (s Store) GC(keep int, container, component string) ([]string, error) {
	if keep < 0 {
		return nil, fmt.Errorf("gc: --keep must not be negative")
	}
	comps, err := s.components(container, component)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, cx := range comps {
		c, x := cx[0], cx[1]
		gens, err := s.Generations(c, x)
		if err != nil {
			return removed, err
		}
		if len(gens) <= keep {
			continue
		}
		kept := map[string]bool{}
		for _, g := range gens[len(gens)-keep:] {
			kept[g.ID] = true
		}
		for _, g := range gens[:len(gens)-keep] {
			os.Remove(filepath.Join(s.Dir, "generations", c, x, strconv.Itoa(g.N)))
		}
		ids, _ := os.ReadDir(filepath.Join(s.Dir, "snapshots", c, x))
		for _, id := range ids {
			if kept[id.Name()] {
				continue
			}
			if err := os.RemoveAll(s.SnapshotDir(c, x, id.Name())); err != nil {
				return removed, fmt.Errorf("gc: %w", err)
			}
			os.Remove(filepath.Join(s.Dir, "checksums", c, x, id.Name()))
			removed = append(removed, Rel(c, x, id.Name()))
		}
		for _, kind := range []string{"generations", "snapshots", "checksums"} {
			os.Remove(filepath.Join(s.Dir, kind, c, x)) // only when empty
			os.Remove(filepath.Join(s.Dir, kind, c))
		}
	}
	return removed, nil
}
