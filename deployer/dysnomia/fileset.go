package dysnomia

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
)

// fileset is the fileset module: a directory of symlinks to the
// component's (immutable) files and of mutable directories. The component
// declares it in two files, as Dysnomia's fileset does:
//
//	.dysnomia-targetdir   the absolute path of the managed directory
//	                      (else the container property targetDir)
//	.dysnomia-fileset     lines "symlink PATH" (a link to PATH, a path in the
//	                      component, named like its base name), "mkdir DIR"
//	                      (a mutable directory) and "target DIR" (the
//	                      subdirectory the following lines act in)
//
// snapshot writes a gzip tarball of the mutable directories
// (snapshots/C/X/<sha256>/state.tar.gz); restore replaces them with the
// newest generation's; collect-garbage removes them once the component is
// marked as garbage.
type fileset struct{}

func (fileset) Name() string { return "fileset" }

type filesetSpec struct {
	dir      string
	links    [][2]string // link path (in dir) → target
	mutables []string    // relative to dir
}

func readFileset(inv *Invocation) (*filesetSpec, error) {
	dir := inv.Properties["targetDir"]
	if b, err := os.ReadFile(filepath.Join(inv.Component, ".dysnomia-targetdir")); err == nil {
		dir = strings.TrimSpace(string(b))
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("fileset %s: no target directory: expected an absolute path in %s/.dysnomia-targetdir or the container property targetDir", inv.ComponentName(), inv.Component)
	}
	spec := &filesetSpec{dir: filepath.Clean(dir)}
	f, err := os.Open(filepath.Join(inv.Component, ".dysnomia-fileset"))
	if err != nil {
		return nil, fmt.Errorf("fileset %s: %w", inv.ComponentName(), err)
	}
	defer f.Close()
	sub := "."
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("%s/.dysnomia-fileset:%d: %q: %s", inv.Component, line, sc.Text(), why)
		}
		if len(fields) != 2 {
			return nil, bad("expected \"symlink PATH\", \"mkdir DIR\" or \"target DIR\"")
		}
		arg := filepath.Clean(fields[1])
		switch fields[0] {
		case "target", "mkdir":
			if filepath.IsAbs(arg) || arg == ".." || strings.HasPrefix(arg, "../") {
				return nil, bad("expected a path inside the target directory")
			}
			if fields[0] == "target" {
				sub = arg
			} else {
				spec.mutables = append(spec.mutables, filepath.Join(sub, arg))
			}
		case "symlink":
			if !filepath.IsAbs(arg) {
				arg = filepath.Join(inv.Component, arg)
			}
			spec.links = append(spec.links, [2]string{filepath.Join(sub, filepath.Base(arg)), arg})
		default:
			return nil, bad("unknown instruction " + fields[0])
		}
	}
	return spec, sc.Err()
}

func (fileset) Run(ctx context.Context, inv *Invocation) error {
	c, x := inv.ContainerName(), inv.ComponentName()
	switch inv.Op {
	case OpActivate, OpDeactivate, OpSnapshot, OpRestore, OpCollectGarbage:
	default:
		return nil
	}
	spec, err := readFileset(inv)
	if err != nil {
		return err
	}
	switch inv.Op {
	case OpActivate:
		for _, l := range spec.links {
			p := filepath.Join(spec.dir, l[0])
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			os.Remove(p)
			if err := os.Symlink(l[1], p); err != nil {
				return err
			}
		}
		for _, m := range spec.mutables {
			if err := os.MkdirAll(filepath.Join(spec.dir, m), 0o755); err != nil {
				return err
			}
		}
		return inv.Store.MarkActive(c, x)
	case OpDeactivate:
		for _, l := range spec.links {
			os.Remove(filepath.Join(spec.dir, l[0]))
		}
		return inv.Store.MarkGarbage(c, x)
	case OpSnapshot:
		return filesetSnapshot(inv, spec)
	case OpRestore:
		file, err := latestDump(inv, "state.tar.gz")
		if err != nil || file == "" {
			return err
		}
		return filesetRestore(inv, spec, file)
	case OpCollectGarbage:
		if !inv.Store.IsGarbage(c, x) {
			return nil
		}
		for _, m := range spec.mutables {
			if err := os.RemoveAll(filepath.Join(spec.dir, m)); err != nil {
				return err
			}
		}
		inv.Store.UnmarkGarbage(c, x)
	}
	return nil
}

// filesetSnapshot writes a deterministic gzip tarball of the mutable
// directories (entries sorted, times and owners zeroed) into the store.
func filesetSnapshot(inv *Invocation, spec *filesetSpec) error {
	return storeWith(inv, "state.tar.gz", func(w io.Writer) error {
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		tw := tar.NewWriter(gz)
		for _, m := range spec.mutables {
			if err := addTree(tw, spec.dir, m); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
}

// addTree adds a mutable directory to a snapshot; one that does not exist
// (never created by the service) adds nothing.
func addTree(tw *tar.Writer, root, rel string) error {
	if _, err := os.Lstat(filepath.Join(root, rel)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return agentapi.AddTree(tw, root, rel)
}

// filesetRestore extracts the tarball into a fresh directory beside the
// target directory (through an os.Root: no entry can write outside it),
// then replaces each mutable directory with its restored copy.
func filesetRestore(inv *Invocation, spec *filesetSpec, file string) error {
	if err := os.MkdirAll(spec.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(spec.dir), ".restore-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := extract(file, tmp); err != nil {
		return fmt.Errorf("restore %s: %w", file, err)
	}
	for _, m := range spec.mutables {
		dst := filepath.Join(spec.dir, m)
		src := filepath.Join(tmp, m)
		if _, err := os.Stat(src); err != nil {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
	}
	return nil
}

func extract(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q leaves the directory", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			if err = root.MkdirAll(filepath.Dir(name), 0o755); err == nil {
				var out *os.File
				if out, err = root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(hdr.Mode)&0o777); err == nil {
					_, err = io.Copy(out, tr)
					if cerr := out.Close(); err == nil {
						err = cerr
					}
				}
			}
		case tar.TypeSymlink:
			if err = root.MkdirAll(filepath.Dir(name), 0o755); err == nil {
				err = root.Symlink(hdr.Linkname, name)
			}
		default:
			err = fmt.Errorf("type %q not supported", hdr.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
}
