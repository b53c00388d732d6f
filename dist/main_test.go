// Package dist_test checks the packaging: `make install` (binaries, systemd
// units, man pages, bash/zsh/fish completions), the units against the
// commands' flags and systemd-analyze, the file names the units, the
// README and the docs use, and the Nix expressions (the vendor hash, and
// the NixOS module evaluated with nix-instantiate against a stub of the
// module system).
package dist_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// tmpRoot holds what the tests install; TestMain removes it.
var tmpRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dydisnix-dist-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// installation is one `make install PREFIX=...` of the tree, built into bin.
type installation struct {
	prefix, bin string
}

var (
	installOnce sync.Once
	installDone installation
	installErr  error
)

// installed runs `make install` once for all tests, with PREFIX a fresh
// directory (so the units' ExecStart name binaries that exist there).
func installed(t *testing.T) installation {
	t.Helper()
	requireTool(t, "make")
	installOnce.Do(func() {
		inst := installation{prefix: filepath.Join(tmpRoot, "prefix"), bin: filepath.Join(tmpRoot, "bin")}
		installErr = makeInstall("PREFIX="+inst.prefix, "BIN="+inst.bin)
		installDone = inst
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return installDone
}

// makeInstall runs `make install` in the repository with the variables.
func makeInstall(vars ...string) error {
	c := exec.Command("make", append([]string{"-C", "..", "install"}, vars...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make install %s: %w\n%s", strings.Join(vars, " "), err, out)
	}
	return nil
}

// requireTool skips (fails in CI) when a program is not installed.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, "%s is not installed", name)
	}
	return p
}

// commands are the programs of cmd/.
func commands(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("..", "cmd", "dydisnix-*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no commands in cmd/ (%v)", err)
	}
	names := make([]string, len(dirs))
	for i, d := range dirs {
		names[i] = filepath.Base(d)
	}
	return names
}

// run runs a program and returns its exit status and combined output.
func run(t *testing.T, prog string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	c := exec.Command(prog, args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	case err != nil:
		t.Fatalf("%s: %v", prog, err)
	}
	return 0, out.String()
}
