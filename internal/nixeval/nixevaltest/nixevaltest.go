// Package nixevaltest helps tests observe a Nix evaluation from outside:
// when it runs and whether it still runs.
package nixevaltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// Forever is a Nix expression that evaluates for hours in little memory.
// nix-instantiate ignores SIGTERM while it evaluates it.
const Forever = "builtins.foldl' (acc: i: acc + builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) 100000)) 0 (builtins.genList (x: x) 100000)"

// Wrapper writes an evaluator command that runs the real nix-instantiate as
// its child (as a shell script around it would) and returns the command
// and a function that waits until that child runs and returns its pid. The
// wait fails the test after timeout or when the wrapper cannot report;
// the child is killed when the test ends.
func Wrapper(t testing.TB) (bin string, started func(timeout time.Duration) int) {
	t.Helper()
	real, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("nix-instantiate is needed: %v", err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" + real + " \"$@\" &\necho $! > " + fifo + "\nwait $!\n"
	bin = filepath.Join(dir, "nix-instantiate")
	// Not os.WriteFile: a child forked meanwhile by a parallel test would
	// hold the file open for writing, and running it would fail ("text
	// file busy"; seen in CI as "the evaluator did not start").
	testenv.WriteExecutable(t, bin, script)
	pids := make(chan string, 1)
	go func() {
		data, err := os.ReadFile(fifo) // blocks until the wrapper writes
		if err != nil {
			data = nil
		}
		pids <- strings.TrimSpace(string(data))
	}()
	return bin, func(timeout time.Duration) int {
		t.Helper()
		select {
		case s := <-pids:
			pid, err := strconv.Atoi(s)
			if err != nil || pid <= 0 {
				t.Fatalf("the evaluator wrapper reported %q, not a pid", s)
			}
			// A test that fails must not leave the evaluator running.
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			return pid
		case <-time.After(timeout):
			t.Fatalf("the evaluator did not start within %v", timeout)
			return 0
		}
	}
}

// Alive reports whether the process pid exists and is not a zombie.
func Alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state letter follows the command name, which is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
