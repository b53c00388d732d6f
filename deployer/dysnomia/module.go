package dysnomia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The operations of the module contract.
const (
	OpActivate       = "activate"
	OpDeactivate     = "deactivate"
	OpLock           = "lock"
	OpUnlock         = "unlock"
	OpSnapshot       = "snapshot"
	OpRestore        = "restore"
	OpCollectGarbage = "collect-garbage"
)

// EnvReplace, set to 1 in a module's environment, tells it that a restore
// may replace existing data (built-in modules refuse otherwise).
const EnvReplace = "DYSNOMIA_REPLACE"

// Invocation is one call of a module.
type Invocation struct {
	// Op is the operation (OpActivate, ...).
	Op string
	// Component is the component's path (a directory).
	Component string
	// Container is the container name.
	Container string
	// Properties are the container's properties (exported to the environment).
	Properties map[string]string
	// Env is the rest of the environment (KEY=VALUE), e.g. the agent's own.
	Env []string
	// Store is the snapshot store (DYSNOMIA_STATEDIR).
	Store Store
	// Replace allows a restore to replace existing data (EnvReplace).
	Replace bool
	// Output receives the module's standard output and error (a log).
	Output io.Writer
}

// ComponentName is the component's name: the base name of its path
// without a hash prefix (32 or 64 lower-case hex or Nix base-32
// characters followed by '-'), as Dysnomia's util computes it.
func (inv *Invocation) ComponentName() string {
	return stripHash(filepath.Base(inv.Component))
}

// ContainerName is the container name without a hash prefix.
func (inv *Invocation) ContainerName() string { return stripHash(inv.Container) }

func stripHash(s string) string {
	if i := strings.IndexByte(s, '-'); (i == 32 || i == 64) && strings.Trim(s[:i], "0123456789abcdefghijklmnopqrstuvwxyz") == "" {
		return s[i+1:]
	}
	return s
}

// envName matches the property names that can be environment variables.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Environ is the module's environment: Env, the container properties
// (those whose names can be environment variables) and DYSNOMIA_STATEDIR
// (and EnvReplace when Replace is set).
func (inv *Invocation) Environ() []string {
	env := append([]string(nil), inv.Env...)
	keys := make([]string, 0, len(inv.Properties))
	for k := range inv.Properties {
		if envName.MatchString(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+inv.Properties[k])
	}
	env = append(env, "DYSNOMIA_STATEDIR="+inv.Store.Dir)
	if inv.Replace {
		env = append(env, EnvReplace+"=1")
	}
	return env
}

// Module carries out the operations of one Dysnomia type.
type Module interface {
	// Name names the module in errors (the type, or the module's path).
	Name() string
	// Run carries out inv.Op; an operation the module does not implement succeeds.
	Run(ctx context.Context, inv *Invocation) error
}

// Builtins are the agent's built-in modules, by type.
var Builtins = map[string]Module{
	"wrapper":             wrapper{},
	"mysql-database":      mysqlDatabase{},
	"postgresql-database": postgresqlDatabase{},
	"fileset":             fileset{},
}

// Resolve finds the module of a type: a type starting with "/" or "./"
// is a path (a file is the module; a directory holds it as the single
// file of its libexec/dysnomia/, as a container-providing service ships
// it); otherwise the first executable named like the type in a directory
// of modulesPath (colon-separated, DYSNOMIA_MODULES_PATH), then the
// built-ins. A module that is missing or not executable is an error
// naming it.
func Resolve(typ, modulesPath string) (Module, error) {
	if strings.HasPrefix(typ, "/") || strings.HasPrefix(typ, "./") {
		p := typ
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("Dysnomia module %s: %w", typ, err)
		}
		if fi.IsDir() {
			dir := filepath.Join(p, "libexec", "dysnomia")
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) != 1 {
				return nil, fmt.Errorf("Dysnomia module %s: a directory must hold exactly one module in libexec/dysnomia/", typ)
			}
			p = filepath.Join(dir, ents[0].Name())
		}
		return external(p)
	}
	if strings.ContainsRune(typ, '/') || typ == "" || typ == "." || typ == ".." {
		return nil, fmt.Errorf("Dysnomia module %q: a type is a name or a path starting with / or ./", typ)
	}
	for _, dir := range filepath.SplitList(modulesPath) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, typ)
		if _, err := os.Lstat(p); err == nil {
			return external(p)
		}
	}
	if m, ok := Builtins[typ]; ok {
		return m, nil
	}
	names := make([]string, 0, len(Builtins))
	for n := range Builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no Dysnomia module for type %q: not in DYSNOMIA_MODULES_PATH (%q) and not built in (%s)", typ, modulesPath, strings.Join(names, ", "))
}

func external(p string) (Module, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("Dysnomia module %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("Dysnomia module %s is not an executable file", p)
	}
	return script{path: p}, nil
}

// script is a module that is a program: `<path> <op> <component> <container>`.
type script struct{ path string }

func (s script) Name() string { return s.path }

func (s script) Run(ctx context.Context, inv *Invocation) error {
	return runProgram(ctx, inv, nil, s.path, inv.Op, inv.Component, inv.Container)
}

// wrapper delegates every operation to the component's bin/wrapper:
// `$component/bin/wrapper <op> <container>`.
type wrapper struct{}

func (wrapper) Name() string { return "wrapper" }

func (wrapper) Run(ctx context.Context, inv *Invocation) error {
	exe := filepath.Join(inv.Component, "bin", "wrapper")
	if fi, err := os.Stat(exe); err != nil || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("wrapper: %s is missing or not executable", exe)
	}
	return runProgram(ctx, inv, nil, exe, inv.Op, inv.Container)
}

// stderrKeep bounds the standard error kept for an error message.
const stderrKeep = 4 << 10

// tailBuffer keeps the last stderrKeep bytes written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > stderrKeep {
		t.b = append(t.b[:0], t.b[len(t.b)-stderrKeep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// lockedWriter serialises the writes of a program's standard output and
// error into one log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runProgram runs a program in its own process group with the
// invocation's environment (stdin: in, or nothing); when ctx ends the
// whole group is killed. A failure is an error with the program's last
// standard error output.
func runProgram(ctx context.Context, inv *Invocation, in io.Reader, exe string, args ...string) error {
	_, err := runCapture(ctx, inv, in, nil, exe, args...)
	return err
}

// runCapture is runProgram writing standard output to out (nil: the
// invocation's Output); it returns the standard error's tail.
func runCapture(ctx context.Context, inv *Invocation, in io.Reader, out io.Writer, exe string, args ...string) (string, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = inv.Environ()
	cmd.Dir = inv.Store.Dir
	if err := os.MkdirAll(cmd.Dir, 0o700); err != nil {
		return "", err
	}
	cmd.Stdin = in
	var errTail tailBuffer
	var logw io.Writer = io.Discard
	if inv.Output != nil {
		logw = &lockedWriter{w: inv.Output}
	}
	if out == nil {
		out = logw
	}
	cmd.Stdout = out
	cmd.Stderr = io.MultiWriter(&errTail, logw)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(exe), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// Its output pipes are held by a process that does not die; give up on it.
		}
		return errTail.String(), fmt.Errorf("%s did not finish: %w (its process group was killed); stderr: %s", filepath.Base(exe), ctx.Err(), orNone(errTail.String()))
	}
	// Whatever it left in its group goes with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return errTail.String(), fmt.Errorf("%s: %v; stderr: %s", filepath.Base(exe), ee, orNone(errTail.String()))
		}
		return errTail.String(), fmt.Errorf("%s: %w", filepath.Base(exe), err)
	}
	return errTail.String(), nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Run resolves the module of typ and carries out inv with it, bounded by
// timeout (0: none). The error names the module, the operation, the
// component and the module's standard error.
func Run(ctx context.Context, typ, modulesPath string, timeout time.Duration, inv *Invocation) error {
	m, err := Resolve(typ, modulesPath)
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %s", timeout))
		defer cancel()
	}
	if err := m.Run(ctx, inv); err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
			err = fmt.Errorf("%w (%v)", err, c)
		}
		return fmt.Errorf("Dysnomia module %s: %s of %s in container %s failed: %w", m.Name(), inv.Op, inv.ComponentName(), inv.Container, err)
	}
	return nil
}

// query runs a program and returns its standard output, trimmed.
func query(ctx context.Context, inv *Invocation, exe string, args ...string) (string, error) {
	var out bytes.Buffer
	_, err := runCapture(ctx, inv, nil, &out, exe, args...)
	return strings.TrimSpace(out.String()), err
}
