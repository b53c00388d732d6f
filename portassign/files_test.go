package portassign

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedWriteKeepsOldFile makes the write itself fail (a child process
// with a 512-byte file size limit writes a larger ids file over a small
// one): the old file must stay byte for byte, and no temporary file may be
// left behind.
func TestFailedWriteKeepsOldFile(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("sh is needed to set the file size limit")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "ids.nix")
	old := []byte(`{ "ids" = { }; }`)
	if err := os.WriteFile(file, old, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `ulimit -f 1 && exec "$0" -test.run='^TestWriteHelper$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "PORTASSIGN_WRITE_HELPER="+file)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "file too large") {
		t.Fatalf("the helper's write did not fail as expected: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, old) {
		t.Fatalf("old file changed to %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestWriteHelper runs only as the child of TestFailedWriteKeepsOldFile.
func TestWriteHelper(t *testing.T) {
	file := os.Getenv("PORTASSIGN_WRITE_HELPER")
	if file == "" {
		return // not the helper process: nothing to do
	}
	ids := NewIDs()
	ids.IDs["ports"] = map[string]int64{}
	for i := int64(0); i < 200; i++ {
		ids.IDs["ports"][strings.Repeat("s", 10)+string(rune('a'+i%26))+string(rune('a'+i/26))] = 3000 + i
	}
	if err := WriteFile(file, ids.Nix()); err != nil {
		t.Fatalf("write failed: %v", err)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ports.json")
	for _, content := range []string{"first", "second"} {
		if err := WriteFile(file, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(file); string(got) != content {
			t.Fatalf("got %q, want %q", got, content)
		}
	}
}

// TestLoadPrevious checks that only a missing previous file means "first
// run" (issue 8, defect 8: any os.Stat error did, so a file that could not
// be read made every port and ID be reassigned).
func TestLoadPrevious(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	notDir := write("regular", "x")
	isDir := filepath.Join(dir, "dir.json")
	if err := os.Mkdir(isDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ports := write("ports.json", `{"ports": {}, "portConfiguration": {"globalConfig": {"lastPort": 3005, "minPort": 3000, "maxPort": 4000, "servicesToPorts": {"a": 3005}}, "targetConfigs": {}}}`)
	ids := write("ids.json", `{"ids": {"uids": {"a": 7}}, "lastAssignments": {"uids": 7}}`)
	bad := write("bad.json", `{"ids": 1`)
	tests := []struct {
		name    string
		file    string
		wantNil bool // (nil, nil): the first run
		wantErr bool
	}{
		{name: "missing", file: filepath.Join(dir, "missing.json"), wantNil: true},
		{name: "missing nix", file: filepath.Join(dir, "missing.nix"), wantNil: true},
		{name: "missing parent", file: filepath.Join(dir, "no", "such.json"), wantNil: true},
		{name: "parent is a file", file: filepath.Join(notDir, "ports.json"), wantErr: true},
		{name: "directory", file: isDir, wantErr: true},
		{name: "malformed", file: bad, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conf, perr := LoadPreviousPortConfig(tc.file)
			got, ierr := LoadPreviousIDs(tc.file)
			for _, r := range []struct {
				what  string
				isNil bool
				err   error
			}{{"ports", conf == nil, perr}, {"ids", got == nil, ierr}} {
				if tc.wantErr {
					if r.err == nil || !strings.Contains(r.err.Error(), tc.file) {
						t.Errorf("%s: want an error naming %s, got %v", r.what, tc.file, r.err)
					}
					continue
				}
				if r.err != nil || r.isNil != tc.wantNil {
					t.Errorf("%s: got nil=%v, %v; want nil=%v, no error", r.what, r.isNil, r.err, tc.wantNil)
				}
			}
		})
	}
	conf, err := LoadPreviousPortConfig(ports)
	if err != nil || conf == nil || conf.Global.ServicesToPorts["a"] != 3005 {
		t.Errorf("existing ports file: got %+v, %v", conf, err)
	}
	got, err := LoadPreviousIDs(ids)
	if err != nil || got == nil || got.IDs["uids"]["a"] != 7 {
		t.Errorf("existing ids file: got %+v, %v", got, err)
	}
}
