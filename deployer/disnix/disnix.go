// Package disnix is the Disnix deployer backend: it writes the (augmented)
// infrastructure and the generated distribution as Nix files and runs the
// Disnix tools (disnix-env, disnix-snapshot, disnix-reconstruct,
// disnix-delete-state, disnix-clean-snapshots) with the user's options
// forwarded, fixing the option-forwarding bugs of the original dydisnix-env
// and dydisnix-self-adapt scripts (--no-migration and the coordinator
// profile path are forwarded to every tool that takes them).
package disnix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

// Tool names of the Disnix commands this backend runs.
const (
	ToolEnv            = "disnix-env"
	ToolSnapshot       = "disnix-snapshot"
	ToolReconstruct    = "disnix-reconstruct"
	ToolDeleteState    = "disnix-delete-state"
	ToolCleanSnapshots = "disnix-clean-snapshots"
)

// File names written into the work directory.
const (
	InfrastructureFile = "infrastructure.nix"
	DistributionFile   = "distribution.nix"
)

// Options are the Disnix options a user gives to dydisnix-env or
// dydisnix-self-adapt; each is forwarded to the Disnix tools that accept it.
// Zero values mean "not given": Disnix's own default applies.
type Options struct {
	// Profile is -p/--profile (Disnix default "default").
	Profile string
	// CoordinatorProfilePath is --coordinator-profile-path.
	CoordinatorProfilePath string
	// MaxConcurrentTransfers is -m/--max-concurrent-transfers (Disnix default 2).
	MaxConcurrentTransfers int
	// Keep is --keep: snapshot generations kept (Disnix default 1).
	Keep int
	// DeployState is --deploy-state: every service's state is managed.
	DeployState bool
	// NoMigration is --no-migration: skip the state migration phase.
	NoMigration bool
	// DeleteState is --delete-state: delete obsolete state after migration.
	DeleteState bool
	// DepthFirst is --depth-first: snapshot, transfer and clean per target.
	DepthFirst bool
	// BuildOnTargets is --build-on-targets: build every service on its target.
	BuildOnTargets bool
	// NoUpgrade is --no-upgrade: ignore the previous manifest.
	NoUpgrade bool
	// NoLock is --no-lock: skip locking the targets.
	NoLock bool
	// ShowTrace is --show-trace: Nix evaluation traces.
	ShowTrace bool
	// ExtraParams is --extra-params: a Nix expression of extra arguments for
	// the services and distribution functions.
	ExtraParams string
	// Packages is -P/--packages: a packages model file.
	Packages string
	// ClientInterface is the default client interface, given to every tool
	// as DISNIX_CLIENT_INTERFACE (and to disnix-env as --interface).
	ClientInterface string
	// TargetProperty is the default target property, given to every tool as
	// DISNIX_TARGET_PROPERTY (and to disnix-env as --target-property).
	TargetProperty string
}

// Backend runs the Disnix tools. The zero value finds the tools on PATH,
// writes the model files into a temporary directory that is removed after
// each call and discards the tools' output.
type Backend struct {
	Options
	// Bin is the directory holding the Disnix tools; "" searches PATH.
	Bin string
	// WorkDir is where the infrastructure and distribution files are written
	// (kept after the run, mode 0600: the augmented infrastructure may hold
	// secrets). "" uses a private temporary directory, removed afterwards.
	WorkDir string
	// Env is added to the tools' environment (after os.Environ()).
	Env []string
	// Log receives the tools' standard output and standard error as they run
	// (Disnix prints its progress to stderr). nil discards it.
	Log io.Writer
	// StopGrace is how long a tool may take to stop after ctx is cancelled:
	// it first gets SIGINT (disnix-env then rolls back and unlocks), and is
	// killed after StopGrace. Zero means 60 seconds.
	StopGrace time.Duration
}

// CommandError reports a Disnix tool that failed, with the end of its
// standard error.
type CommandError struct {
	// Tool is the command name (e.g. disnix-env).
	Tool string
	// Args are its arguments.
	Args []string
	// Err is the exec error (an *exec.ExitError for a non-zero exit).
	Err error
	// Stderr is the tail of the command's standard error.
	Stderr string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.Tool, strings.Join(e.Args, " "), e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ":\n" + s
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode returns the tool's exit status, or -1 when it did not exit normally.
func (e *CommandError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// commonArgs are the profile options every coordinator tool takes.
func (o *Options) commonArgs() []string {
	var a []string
	if o.Profile != "" {
		a = append(a, "--profile", o.Profile)
	}
	if o.CoordinatorProfilePath != "" {
		a = append(a, "--coordinator-profile-path", o.CoordinatorProfilePath)
	}
	return a
}

func (o *Options) transferArgs() []string {
	if o.MaxConcurrentTransfers > 0 {
		return []string{"--max-concurrent-transfers", strconv.Itoa(o.MaxConcurrentTransfers)}
	}
	return nil
}

func (o *Options) keepArgs() []string {
	if o.Keep > 0 {
		return []string{"--keep", strconv.Itoa(o.Keep)}
	}
	return nil
}

// EnvArgs returns the disnix-env arguments for the given model files.
func (o *Options) EnvArgs(servicesFile, infraFile, distFile string) []string {
	a := []string{"-s", servicesFile, "-i", infraFile, "-d", distFile}
	if o.Packages != "" {
		a = append(a, "-P", o.Packages)
	}
	a = append(a, o.commonArgs()...)
	a = append(a, o.transferArgs()...)
	a = append(a, o.stateArgs()...)
	a = append(a, o.keepArgs()...)
	if o.BuildOnTargets {
		a = append(a, "--build-on-targets")
	}
	if o.NoUpgrade {
		a = append(a, "--no-upgrade")
	}
	if o.NoLock {
		a = append(a, "--no-lock")
	}
	if o.ClientInterface != "" {
		a = append(a, "--interface", o.ClientInterface)
	}
	if o.TargetProperty != "" {
		a = append(a, "--target-property", o.TargetProperty)
	}
	if o.ExtraParams != "" {
		a = append(a, "--extra-params", o.ExtraParams)
	}
	if o.ShowTrace {
		a = append(a, "--show-trace")
	}
	return a
}

func (o *Options) stateArgs() []string {
	var a []string
	if o.DeployState {
		a = append(a, "--deploy-state")
	}
	if o.NoMigration {
		a = append(a, "--no-migration")
	}
	if o.DeleteState {
		a = append(a, "--delete-state")
	}
	if o.DepthFirst {
		a = append(a, "--depth-first")
	}
	return a
}

// env returns the environment for the tools.
func (b *Backend) env() []string {
	env := os.Environ()
	if b.ClientInterface != "" {
		env = append(env, "DISNIX_CLIENT_INTERFACE="+b.ClientInterface)
	}
	if b.TargetProperty != "" {
		env = append(env, "DISNIX_TARGET_PROPERTY="+b.TargetProperty)
	}
	if b.Profile != "" {
		env = append(env, "DISNIX_PROFILE="+b.Profile)
	}
	if b.DeployState {
		env = append(env, "DISNIX_DEPLOY_STATE=1")
	}
	if b.Options.DeleteState {
		env = append(env, "DISNIX_DELETE_STATE=1")
	}
	return append(env, b.Env...)
}

// tool resolves a Disnix tool to an executable path.
func (b *Backend) tool(name string) (string, error) {
	if b.Bin != "" {
		p := filepath.Join(b.Bin, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w (is Disnix installed in %s?)", name, err, b.Bin)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: install Disnix or use the agent deployer: %w", name, err)
	}
	return p, nil
}

// run executes one Disnix tool and waits for it.
func (b *Backend) run(ctx context.Context, name string, args ...string) error {
	path, err := b.tool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = b.env()
	tail := &tailBuffer{max: 16 << 10}
	var out io.Writer = io.Discard
	if b.Log != nil {
		out = &lockedWriter{w: b.Log}
	}
	cmd.Stdout = out
	cmd.Stderr = io.MultiWriter(out, tail)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = b.StopGrace
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 60 * time.Second
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return &CommandError{Tool: name, Args: args, Err: err, Stderr: tail.String()}
	}
	return nil
}

// workDir returns the directory for model files and a cleanup function.
func (b *Backend) workDir() (string, func(), error) {
	if b.WorkDir != "" {
		if err := os.MkdirAll(b.WorkDir, 0o700); err != nil {
			return "", nil, fmt.Errorf("disnix work directory: %w", err)
		}
		return b.WorkDir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "dydisnix-disnix-*")
	if err != nil {
		return "", nil, fmt.Errorf("disnix work directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// WriteModels writes the infrastructure and the distribution as Nix files
// into dir (atomically, mode 0600) and returns their paths.
func WriteModels(dir string, infra model.Infrastructure, dist model.Distribution) (infraFile, distFile string, err error) {
	infraNix, err := InfrastructureNix(infra)
	if err != nil {
		return "", "", err
	}
	distNix, err := DistributionNix(dist, infra)
	if err != nil {
		return "", "", err
	}
	infraFile = filepath.Join(dir, InfrastructureFile)
	distFile = filepath.Join(dir, DistributionFile)
	if err := model.WriteFileAtomic(infraFile, infraNix, 0o600); err != nil {
		return "", "", err
	}
	if err := model.WriteFileAtomic(distFile, distNix, 0o600); err != nil {
		return "", "", err
	}
	return infraFile, distFile, nil
}

// checkServicesFile checks that the services model is a Nix file (Disnix
// builds the services' pkg attributes, which only a .nix model has) and
// returns its absolute path.
func checkServicesFile(servicesFile string) (string, error) {
	if servicesFile == "" {
		return "", errors.New("disnix deployer: a services model (.nix) is required")
	}
	if !strings.EqualFold(filepath.Ext(servicesFile), ".nix") {
		return "", fmt.Errorf("%s: the disnix deployer needs a Nix services model (.nix) because Disnix builds each service's pkg; use --deployer agent for JSON/YAML models", servicesFile)
	}
	abs, err := filepath.Abs(servicesFile)
	if err != nil {
		return "", fmt.Errorf("services model %s: %w", servicesFile, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("services model: %w", err)
	}
	return abs, nil
}

// Deploy writes infra and dist as Nix files and runs
// disnix-env -s SERVICES -i INFRA.nix -d DIST.nix with the options.
func (b *Backend) Deploy(ctx context.Context, servicesFile string, infra model.Infrastructure, dist model.Distribution) error {
	svc, err := checkServicesFile(servicesFile)
	if err != nil {
		return err
	}
	dir, cleanup, err := b.workDir()
	if err != nil {
		return err
	}
	defer cleanup()
	infraFile, distFile, err := WriteModels(dir, infra, dist)
	if err != nil {
		return err
	}
	return b.run(ctx, ToolEnv, b.EnvArgs(svc, infraFile, distFile)...)
}

// DeployCommand returns the command line Deploy would run (for --dry-run),
// with the model files named as they would be written into the work
// directory (WorkDir, or "<tmp>" when none is set).
func (b *Backend) DeployCommand(servicesFile string) []string {
	dir := b.WorkDir
	if dir == "" {
		dir = "<tmp>"
	}
	return append([]string{ToolEnv}, b.EnvArgs(servicesFile, filepath.Join(dir, InfrastructureFile), filepath.Join(dir, DistributionFile))...)
}

// Undeploy runs disnix-env --undeploy -i INFRA.nix: every service deployed
// on the infrastructure's targets is deactivated.
func (b *Backend) Undeploy(ctx context.Context, infra model.Infrastructure) error {
	dir, cleanup, err := b.workDir()
	if err != nil {
		return err
	}
	defer cleanup()
	infraFile, _, err := WriteModels(dir, infra, nil)
	if err != nil {
		return err
	}
	args := append([]string{"--undeploy", "-i", infraFile}, b.commonArgs()...)
	args = append(args, b.transferArgs()...)
	args = append(args, b.stateArgs()...)
	args = append(args, b.keepArgs()...)
	if b.ShowTrace {
		args = append(args, "--show-trace")
	}
	return b.run(ctx, ToolEnv, args...)
}

// Rollback runs disnix-env --rollback: the previous coordinator generation
// is deployed again.
func (b *Backend) Rollback(ctx context.Context) error {
	args := append([]string{"--rollback"}, b.commonArgs()...)
	args = append(args, b.transferArgs()...)
	args = append(args, b.stateArgs()...)
	args = append(args, b.keepArgs()...)
	return b.run(ctx, ToolEnv, args...)
}

// SnapshotOptions select what disnix-snapshot captures.
type SnapshotOptions struct {
	// Container and Component filter the snapshot mappings.
	Container, Component string
	// All transfers every snapshot generation, not only the latest.
	All bool
	// TransferOnly skips taking new snapshots.
	TransferOnly bool
	// Manifest is an optional manifest; "" snapshots the last deployment.
	Manifest string
}

// Snapshot runs disnix-snapshot: the state of every stateful service of the
// last deployment is captured and transferred to the coordinator.
func (b *Backend) Snapshot(ctx context.Context, so SnapshotOptions) error {
	args := b.commonArgs()
	args = append(args, b.transferArgs()...)
	if b.DepthFirst {
		args = append(args, "--depth-first")
	}
	args = append(args, b.keepArgs()...)
	if so.All {
		args = append(args, "--all")
	}
	if so.TransferOnly {
		args = append(args, "--transfer-only")
	}
	if so.Container != "" {
		args = append(args, "--container", so.Container)
	}
	if so.Component != "" {
		args = append(args, "--component", so.Component)
	}
	if so.Manifest != "" {
		args = append(args, so.Manifest)
	}
	return b.run(ctx, ToolSnapshot, args...)
}

// Reconstruct runs disnix-reconstruct INFRA.nix: the coordinator's manifest
// is rebuilt from the targets' profiles.
func (b *Backend) Reconstruct(ctx context.Context, infra model.Infrastructure) error {
	dir, cleanup, err := b.workDir()
	if err != nil {
		return err
	}
	defer cleanup()
	infraFile, _, err := WriteModels(dir, infra, nil)
	if err != nil {
		return err
	}
	args := b.commonArgs()
	args = append(args, b.transferArgs()...)
	if b.ShowTrace {
		args = append(args, "--show-trace")
	}
	args = append(args, infraFile)
	return b.run(ctx, ToolReconstruct, args...)
}

// DeleteObsoleteState runs disnix-delete-state: the state of the stateful services
// of manifest ("" = the last deployment) that are no longer active is
// deleted on their targets.
func (b *Backend) DeleteObsoleteState(ctx context.Context, manifest string) error {
	args := b.commonArgs()
	args = append(args, b.transferArgs()...)
	if manifest != "" {
		args = append(args, manifest)
	}
	return b.run(ctx, ToolDeleteState, args...)
}

// CleanSnapshots runs disnix-clean-snapshots --keep N INFRA.nix: only the
// newest keep snapshot generations stay on every target (0 removes all).
func (b *Backend) CleanSnapshots(ctx context.Context, infra model.Infrastructure, keep int, container, component string) error {
	if keep < 0 {
		return fmt.Errorf("disnix-clean-snapshots: --keep must be >= 0, got %d", keep)
	}
	dir, cleanup, err := b.workDir()
	if err != nil {
		return err
	}
	defer cleanup()
	infraFile, _, err := WriteModels(dir, infra, nil)
	if err != nil {
		return err
	}
	args := []string{"--keep", strconv.Itoa(keep)}
	if container != "" {
		args = append(args, "--container", container)
	}
	if component != "" {
		args = append(args, "--component", component)
	}
	args = append(args, infraFile)
	return b.run(ctx, ToolCleanSnapshots, args...)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.ToValidUTF8(t.buf, []byte("?")))
}

// lockedWriter serialises writes from the tool's stdout and stderr copiers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
