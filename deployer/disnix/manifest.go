package disnix

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
)

// DefaultProfile is Disnix's default profile name.
const DefaultProfile = "default"

// DefaultCoordinatorProfilePath returns Disnix's default coordinator profile
// directory, /nix/var/nix/profiles/per-user/$USER/disnix-coordinator.
func DefaultCoordinatorProfilePath() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	return filepath.Join("/nix/var/nix/profiles/per-user", name, "disnix-coordinator")
}

// CoordinatorManifest returns the path of the coordinator profile that
// points at the last deployed Disnix manifest:
// <coordinator-profile-path>/<profile>.
func (o *Options) CoordinatorManifest() string {
	dir := o.CoordinatorProfilePath
	if dir == "" {
		dir = DefaultCoordinatorProfilePath()
	}
	p := o.Profile
	if p == "" {
		p = os.Getenv("DISNIX_PROFILE")
	}
	if p == "" {
		p = DefaultProfile
	}
	return filepath.Join(dir, p)
}

// Current returns the distribution of the last deployment, read from the
// coordinator profile's manifest (nil, nil when nothing was deployed yet).
func (b *Backend) Current(ctx context.Context) (model.Distribution, error) {
	file := b.CoordinatorManifest()
	st, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("coordinator profile: %w", err)
	}
	if st.IsDir() {
		file = filepath.Join(file, "manifest.xml")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("coordinator manifest: %w", err)
	}
	return PreviousDistribution(data, file)
}

// PreviousDistribution converts a Disnix V2 manifest (XML) into the
// distribution it deployed, as dydisnix-previous-distribution does: for
// every service mapping in manifest order the mapping's target (and
// container) is appended to the list of the mapped service's name. When
// every container equals its service's type the distribution uses plain
// target names, otherwise every mapping is a {target, container} record.
func PreviousDistribution(data []byte, file string) (model.Distribution, error) {
	return model.PreviousFromDisnixManifestXML(data, file)
}

// DistributionOf returns the distribution a dydisnix manifest deploys:
// service name → its mappings, a plain target when the container is the
// service's type, else a {target, container} record.
func DistributionOf(man *model.Manifest) model.Distribution {
	d := model.Distribution{}
	if man == nil {
		return d
	}
	for _, mp := range man.Mappings {
		svc, ok := man.Services[mp.Service]
		if !ok {
			continue
		}
		m := model.Mapping{Target: mp.Target}
		if mp.Container != "" && mp.Container != svc.Type {
			m.Container, m.Record = mp.Container, true
		}
		d[svc.Name] = append(d[svc.Name], m)
	}
	return d
}

// Executor runs deployer plans through Disnix: it implements
// deployer.Backend. Disnix computes and carries out the transition itself
// (including its own rollback), so the plan's steps are not executed one by
// one: the plan's new manifest gives the infrastructure and the
// distribution, and one disnix-env run deploys them, as the single step
// (StepDisnixEnv) of a plan run by deployer.Execute, the scheduler every
// backend shares.
type Executor struct {
	*Backend
	// ServicesFile is the Nix services model given to disnix-env -s.
	ServicesFile string
}

var _ deployer.Backend = (*Executor)(nil)

// StepDisnixEnv is the kind of the single step an Executor runs.
const StepDisnixEnv deployer.StepKind = "disnix-env"

// Execute deploys plan.New with disnix-env. Progress reports the run as
// step 1 (StepDisnixEnv on target "*"); a failure is a *deployer.StepError
// carrying disnix-env's standard error, a cancellation (disnix-env gets
// SIGINT, see Backend.StopGrace) a *deployer.CancelledError. The step has
// no undo: disnix-env rolls back by itself when it fails or is interrupted.
func (e *Executor) Execute(ctx context.Context, plan *deployer.Plan, progress func(deployer.StepEvent)) error {
	if plan == nil || plan.New == nil {
		return errors.New("disnix: plan without a new manifest")
	}
	one := &deployer.Plan{Old: plan.Old, New: plan.New, Steps: []deployer.Step{{ID: 1, Kind: StepDisnixEnv, Target: "*"}}}
	return deployer.Execute(ctx, one, envStepper{e: e, man: plan.New}, deployer.ExecOptions{Progress: progress})
}

// envStepper is the Stepper of an Executor: its one step runs disnix-env.
type envStepper struct {
	e   *Executor
	man *model.Manifest
}

// Do runs disnix-env on the manifest's infrastructure and distribution.
func (s envStepper) Do(ctx context.Context, _ deployer.Step) (deployer.StepResult, error) {
	return deployer.StepResult{}, s.e.Deploy(ctx, s.e.ServicesFile, s.man.Infrastructure, DistributionOf(s.man))
}

// Undo does nothing: disnix-env rolled back by itself.
func (envStepper) Undo(context.Context, deployer.Step) (string, error) { return "", nil }
