package testenv

import (
	"os"
	"syscall"
	"testing"
)

// WriteExecutable writes an executable file (a fake tool or a service
// script) that the test then runs. No process forks while the file is open
// for writing: a child forked by a parallel test would hold the descriptor
// until its exec, and running the file would fail with "text file busy".
func WriteExecutable(t testing.TB, path, content string) {
	t.Helper()
	syscall.ForkLock.Lock()
	err := os.WriteFile(path, []byte(content), 0o755)
	syscall.ForkLock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}
