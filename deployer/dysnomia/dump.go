package dysnomia

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// dumpSnapshot runs a dump program and streams its output, gzip
// compressed, into a new snapshot (payload file payload) of the
// invocation's component: the dump is never held in memory.
func dumpSnapshot(ctx context.Context, inv *Invocation, payload, exe string, args ...string) error {
	return storeWith(inv, payload, func(w io.Writer) error {
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if _, err := runCapture(ctx, inv, nil, gz, exe, args...); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		return gz.Close()
	})
}

// storeWith writes a snapshot of the invocation's component with one
// payload file, whose content write streams; the snapshot id is the
// sha256 of the payload (an identical payload adds no generation).
func storeWith(inv *Invocation, payload string, write func(io.Writer) error) error {
	c, x := inv.ContainerName(), inv.ComponentName()
	tmpRoot := filepath.Join(inv.Store.Dir, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(tmpRoot, "snapshot-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := os.OpenFile(filepath.Join(tmp, payload), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	err = write(io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return inv.Store.Import(c, x, tmp, sum, "sha256:"+sum)
}

// latestDump returns the payload file of the newest generation of the
// invocation's component after verifying its checksum ("" when there is
// no generation). A payload that fails its checksum is an error: it is
// never restored.
func latestDump(inv *Invocation, payload string) (string, error) {
	c, x := inv.ContainerName(), inv.ComponentName()
	g, ok, err := inv.Store.Latest(c, x)
	if err != nil || !ok {
		return "", err
	}
	if err := inv.Store.Verify(c, x, g.ID); err != nil {
		return "", fmt.Errorf("generation %d: %w: not restored", g.N, err)
	}
	return filepath.Join(inv.Store.SnapshotDir(c, x, g.ID), payload), nil
}

// loadDump streams a gzip-compressed dump into a program's standard input.
func loadDump(ctx context.Context, inv *Invocation, file, exe string, args ...string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("restore %s: %w", file, err)
	}
	if err := runProgram(ctx, inv, gz, exe, args...); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// lookFirst returns the first of the programs found on PATH.
func lookFirst(names ...string) (string, error) {
	for _, n := range names {
		if p, err := lookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %v is installed (PATH)", names)
}
