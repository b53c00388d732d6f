package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarball(entries ...*tar.Header) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// FuzzExtractTarball: whatever a snapshot holds, extraction never panics
// and never writes outside the target directory.
func FuzzExtractTarball(f *testing.F) {
	f.Add(tarball(&tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o700}, &tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Size: 3, Mode: 0o600}))
	f.Add(tarball(&tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600}))
	f.Add(tarball(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}))
	f.Add(tarball(&tar.Header{Name: "/abs", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600}))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "state")
		os.MkdirAll(dir, 0o700)
		extractTarball(bytes.NewReader(data), dir, extractLimits{bytes: 1 << 20, entries: 1000})
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err == nil && p != root && p != dir && !strings.HasPrefix(p, dir+string(filepath.Separator)) {
				t.Fatalf("extraction wrote outside the state directory: %s", p)
			}
			return nil
		})
	})
}
