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
