// Command dydisnix-env deploys once: it reads (or discovers) the
// infrastructure, augments it, computes the distribution with a QoS policy,
// assigns ports and IDs, and carries the deployment from the last manifest
// generation to the new one.
//
//	dydisnix-env -s services.nix -q qos.yaml [-i infrastructure.nix] [--dry-run]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/disnix"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
	_ "github.com/dydisnix/dydisnix/policies" // builtin:NAME policies
	"github.com/dydisnix/dydisnix/portassign"
	"github.com/dydisnix/dydisnix/qos"
	"github.com/dydisnix/dydisnix/reconstruct"
)

const usage = `Usage: dydisnix-env -s SERVICES -q POLICY [-i INFRASTRUCTURE] [options]

Deploys once: discovers (or reads) the infrastructure, augments it, computes
the distribution with the QoS policy (the previous deployment's distribution
is passed to it), assigns ports and IDs, builds the manifest and carries
the deployment from the last manifest generation to the new one: lock,
deactivate obsolete services (dependents first), move state, activate new
services (dependencies first), unlock. A failure rolls everything back.

Options:
  -s, --services FILE         services model (required)
  -q, --qos POLICY            QoS policy file or builtin:NAME (required)
  -i, --infrastructure FILE   infrastructure model; without it the command named by
                              DYDISNIX_GENINFRA is run, else mDNS is browsed on
                              --interface for --discovery-timeout
  -a, --augment FILE          augmentation model (secrets added to the infrastructure)
      --ports FILE            ports file: assign ports (portAssign property), keep the file
      --id-resources FILE     ID resources model ...
      --ids FILE              ... and the ids file to assign IDs into
      --deployer NAME         agent (default) or disnix
      --agent-token-file F    bearer token of the agents (agent deployer; required
                              unless --dry-run)
      --agent-ca-file F       PEM certificate(s) to trust for agents served over TLS
      --state-dir DIR         coordinator state: manifest generations and snapshot
                              store (default $DYDISNIX_STATE_DIR, else ~/.dydisnix)
      --target-property P     default target property holding the agent URL
                              (default agentURL; a target's targetProperty wins)
      --dry-run               print the plan (numbered steps) and change nothing
  -m, --max-concurrent N      steps run in parallel (default 4)
      --delete-state          delete the old copy of moved state
      --no-migration          do not move state
      --deploy-state          every service's state is managed (deployState default)
      --no-lock               do not lock the targets
      --no-upgrade            ignore the previous deployment (activate everything)
      --reconstruct           first merge what the targets report into the previous
                              manifest (adopt or remove stale services)
      --keep N                snapshot generations kept in the store (default 3)
      --undeploy              deactivate everything deployed (no -s/-q needed)
      --rollback              deploy the previous manifest generation again (no -s/-q/-i)
      --switch-to-generation N  deploy manifest generation N (no -s/-q/-i)
      --list-generations      list the manifest generations and exit
      --interface IF          interface to browse mDNS on (repeatable)
      --discovery-timeout D   how long to browse (default 3s)
      --format FMT            text (default) or json: the plan of --dry-run
  -o, --output FILE           write the plan (--dry-run) or the new manifest there
  -h, --help                  show this help

Disnix backend only (--deployer disnix), forwarded to disnix-env and friends:
  -p, --profile NAME                  Disnix profile name
      --coordinator-profile-path DIR  directory of the coordinator profile
      --depth-first                   snapshot, transfer and clean per target
      --build-on-targets              build every service on its target
      --show-trace                    Nix evaluation traces
      --extra-params EXPR             extra arguments for the Nix models
  (also -m, --keep, --deploy-state, --no-migration, --delete-state, --no-lock,
  --no-upgrade and --target-property above; DISNIX_CLIENT_INTERFACE and
  DISNIX_TARGET_PROPERTY are passed through)

Exit status: 0 success, 1 model, planning or deployment error (rolled back),
2 usage error.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	// disnix holds the Disnix backend's own flags (profile, coordinator
	// profile path, --depth-first, --build-on-targets, --show-trace, ...);
	// the flags dydisnix-env shares with it land in the fields below.
	disnix                                                 disnix.Options
	services, qos, infra, augment, ports, idResources, ids string
	deployer, tokenFile, stateDir, targetProp, format, out string
	caFile                                                 string
	dryRun, deleteState, noMigration, deployState, noLock  bool
	noUpgrade, reconstruct, help                           bool
	undeploy, rollback, listGenerations                    bool
	switchTo                                               int
	parallel, keep                                         int
	interfaces                                             []string
	discoveryTimeout                                       time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := pflag.NewFlagSet("dydisnix-env", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVarP(&o.services, "services", "s", "", "")
	fs.StringVarP(&o.qos, "qos", "q", "", "")
	fs.StringVarP(&o.infra, "infrastructure", "i", "", "")
	fs.StringVarP(&o.augment, "augment", "a", "", "")
	fs.StringVar(&o.ports, "ports", "", "")
	fs.StringVar(&o.idResources, "id-resources", "", "")
	fs.StringVar(&o.ids, "ids", "", "")
	fs.StringVar(&o.deployer, "deployer", "agent", "")
	fs.StringVar(&o.tokenFile, "agent-token-file", "", "")
	fs.StringVar(&o.caFile, "agent-ca-file", "", "")
	fs.StringVar(&o.stateDir, "state-dir", "", "")
	fs.StringVar(&o.targetProp, "target-property", "", "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	fs.IntVarP(&o.parallel, "max-concurrent", "m", 4, "")
	fs.IntVar(&o.parallel, "max-concurrent-transfers", 4, "") // Disnix's name
	fs.MarkHidden("max-concurrent-transfers")
	fs.BoolVar(&o.undeploy, "undeploy", false, "")
	fs.BoolVar(&o.rollback, "rollback", false, "")
	fs.IntVar(&o.switchTo, "switch-to-generation", 0, "")
	fs.BoolVar(&o.listGenerations, "list-generations", false, "")
	fs.BoolVar(&o.deleteState, "delete-state", false, "")
	fs.BoolVar(&o.noMigration, "no-migration", false, "")
	fs.BoolVar(&o.deployState, "deploy-state", false, "")
	fs.BoolVar(&o.noLock, "no-lock", false, "")
	fs.BoolVar(&o.noUpgrade, "no-upgrade", false, "")
	fs.BoolVar(&o.reconstruct, "reconstruct", false, "")
	fs.IntVar(&o.keep, "keep", 3, "")
	fs.StringArrayVar(&o.interfaces, "interface", nil, "")
	fs.DurationVar(&o.discoveryTimeout, "discovery-timeout", 3*time.Second, "")
	fs.StringVar(&o.format, "format", "text", "")
	fs.StringVarP(&o.out, "output", "o", "", "")
	fs.BoolVarP(&o.help, "help", "h", false, "")
	o.disnix.AddFlags(fs) // the Disnix-only flags, under their original names
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-env: %v\n\n%s", err, usage)
		return 2
	}
	if o.help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	uerr := func(msg string) int {
		fmt.Fprintf(stderr, "dydisnix-env: %s\n\n%s", msg, usage)
		return 2
	}
	generational := o.rollback || o.switchTo != 0 || o.listGenerations
	switch {
	case fs.NArg() > 0:
		return uerr("unexpected arguments: " + strings.Join(fs.Args(), " "))
	case o.undeploy && generational, o.rollback && o.switchTo != 0:
		return uerr("--undeploy, --rollback, --switch-to-generation and --list-generations exclude each other")
	case o.undeploy || generational:
		if o.deployer != "agent" {
			return uerr("--undeploy, --rollback, --switch-to-generation and --list-generations need the agent deployer here (use disnix-env for Disnix)")
		}
	case o.services == "":
		return uerr("-s/--services is required")
	case o.qos == "":
		return uerr("-q/--qos is required")
	case o.deployer != "agent" && o.deployer != "disnix":
		return uerr("--deployer: expected agent or disnix")
	case o.deployer == "agent" && o.tokenFile == "" && !o.dryRun && !o.listGenerations:
		return uerr("--agent-token-file is required with the agent deployer")
	case (o.idResources == "") != (o.ids == ""):
		return uerr("--id-resources and --ids go together")
	case o.format != "text" && o.format != "json":
		return uerr("--format: expected text or json")
	case o.parallel < 1:
		return uerr("-m: expected a positive number")
	}
	if o.stateDir == "" {
		o.stateDir = DefaultStateDir()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.deployer == "agent" && o.tokenFile == "" && !o.dryRun && !o.listGenerations {
		return uerr("--agent-token-file is required with the agent deployer")
	}
	if err := deploy(ctx, &o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "dydisnix-env:", err)
		return 1
	}
	return 0
}

// DefaultStateDir is $DYDISNIX_STATE_DIR, else ~/.dydisnix.
func DefaultStateDir() string {
	if d := os.Getenv("DYDISNIX_STATE_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dydisnix"
	}
	return filepath.Join(home, ".dydisnix")
}

func loadInfra(ctx context.Context, o *options) (model.Infrastructure, error) {
	if o.infra != "" {
		return model.LoadInfrastructure(o.infra)
	}
	if gen := os.Getenv("DYDISNIX_GENINFRA"); gen != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", gen)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("DYDISNIX_GENINFRA %q: %w", gen, err)
		}
		v, err := discovery.EvalNixOrJSON(ctx, out, "DYDISNIX_GENINFRA output")
		if err != nil {
			return nil, err
		}
		return model.InfrastructureFromValue(v, "DYDISNIX_GENINFRA output")
	}
	if len(o.interfaces) == 0 {
		return nil, errors.New("no infrastructure: give -i, set DYDISNIX_GENINFRA, or --interface to browse mDNS")
	}
	src, err := discovery.NewMDNSSource(discovery.BrowserConfig{Interfaces: o.interfaces})
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, o.discoveryTimeout)
	defer cancel()
	snaps := make(chan discovery.Snapshot, 4)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(bctx, snaps) }()
	var last model.Infrastructure
	for {
		select {
		case s := <-snaps:
			last = s.Infrastructure
		case err := <-errc:
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				return nil, err
			}
			if last == nil {
				return nil, fmt.Errorf("mDNS: no machine found on %s within %s", strings.Join(o.interfaces, ","), o.discoveryTimeout)
			}
			return last, nil
		}
	}
}

// injectAssignments sets each service's assigned port (property "port")
// and IDs (property named by the resource; resource "ports" also sets
// "port"). A service only gets a value when it asked for one (portAssign,
// requiresUniqueIdsFor), so the assigned value wins over a value written
// in the model (typically a default for deployments without assignment).
func injectAssignments(svcs model.Services, ports map[string]int64, ids map[string]map[string]int64) {
	set := func(s *model.Service, k string, v int64) {
		s.Attrs[k] = json.Number(fmt.Sprint(v))
	}
	for name, p := range ports {
		if s := svcs[name]; s != nil {
			set(s, "port", p)
		}
	}
	for res, m := range ids {
		for name, id := range m {
			if s := svcs[name]; s != nil {
				set(s, res, id)
				if res == "ports" {
					set(s, "port", id)
				}
			}
		}
	}
}

func deploy(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if o.undeploy || o.rollback || o.switchTo != 0 || o.listGenerations {
		return generations(ctx, o, stdout, stderr)
	}
	svcs, err := model.LoadServices(o.services)
	if err != nil {
		return err
	}
	// A model Disnix could not deploy (unknown dependency, dependsOn
	// cycle, name mismatch) is refused before anything is planned.
	if err := svcs.Validate(o.services); err != nil {
		return err
	}
	infra, err := loadInfra(ctx, o)
	if err != nil {
		return err
	}
	if o.augment != "" {
		aug, err := augment.Load(o.augment, augment.Options{})
		if err != nil {
			return err
		}
		if infra, err = aug.Apply(ctx, infra); err != nil {
			return fmt.Errorf("augment %s: %w", o.augment, err)
		}
	}
	if o.deployer == "agent" && o.tokenFile != "" {
		// Machines that do not answer or drain (graceful leave) get no service.
		tok, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("agent token file: %w", err)
		}
		hc, err := deployer.HTTPClientWithCA(o.caFile)
		if err != nil {
			return err
		}
		probe := &deployer.AgentBackend{Token: strings.TrimSpace(string(tok)), HTTP: hc}
		health := probe.Health(ctx, infra, o.targetProp, 3*time.Second)
		usable := model.Infrastructure{}
		for _, name := range infra.Names() {
			switch h := health[name]; {
			case h == nil:
				fmt.Fprintf(stderr, "note: target %s does not answer: no service is placed on it\n", name)
			case h.Draining:
				fmt.Fprintf(stderr, "note: target %s is draining: its services move away\n", name)
			default:
				usable[name] = infra[name]
			}
		}
		infra = usable
	}
	var store *deployer.Store
	var old *model.Manifest
	if o.deployer == "agent" {
		if store, err = deployer.OpenStore(o.stateDir, o.keep); err != nil {
			return err
		}
		if !o.dryRun {
			unlock, err := store.Lock()
			if err != nil {
				return err
			}
			defer unlock()
		}
		if old, err = store.Latest(); err != nil {
			return err
		}
	}
	policy, err := qos.LoadPolicy(o.qos)
	if err != nil {
		return err
	}
	in := qos.Input{Services: svcs, Infrastructure: infra, Empty: qos.RejectRemoved}
	if old != nil {
		in.Previous = PreviousDistribution(old)
	}
	res, err := policy.Run(in)
	if err != nil {
		return fmt.Errorf("%s: %w", o.qos, err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "dydisnix-env: warning:", w)
	}
	dist := res.Distribution
	var ports map[string]int64
	var ids map[string]map[string]int64
	if o.ports != "" {
		var prev *portassign.PortConfiguration
		if _, err := os.Stat(o.ports); err == nil {
			if prev, err = portassign.LoadPortConfig(o.ports); err != nil {
				return err
			}
		}
		p, err := portassign.AssignPorts(portassign.PortRequest{Services: svcs, Distribution: dist, Previous: prev})
		if err != nil {
			return err
		}
		if !o.dryRun {
			data := p.JSON()
			if strings.HasSuffix(o.ports, ".nix") {
				data = p.Nix()
			}
			if err := portassign.WriteFile(o.ports, data); err != nil {
				return err
			}
		}
		ports = p.Ports
	}
	if o.idResources != "" {
		resources, err := portassign.LoadResources(o.idResources)
		if err != nil {
			return err
		}
		var prev *portassign.IDs
		if _, err := os.Stat(o.ids); err == nil {
			if prev, err = portassign.LoadIDs(o.ids); err != nil {
				return err
			}
		}
		got, err := portassign.AssignIDs(portassign.IDRequest{Services: svcs, Distribution: dist, Resources: resources, Previous: prev})
		if err != nil {
			return err
		}
		if !o.dryRun {
			if err := writeIDs(o.ids, got); err != nil {
				return err
			}
		}
		ids = got.IDs
	}
	injectAssignments(svcs, ports, ids)

	if o.deployer == "disnix" {
		opts := o.disnix
		opts.MaxConcurrentTransfers, opts.Keep, opts.DeployState = o.parallel, o.keep, o.deployState
		opts.NoMigration, opts.DeleteState, opts.NoUpgrade, opts.NoLock = o.noMigration, o.deleteState, o.noUpgrade, o.noLock
		opts.TargetProperty = o.targetProp
		b := &disnix.Backend{Options: opts, Log: stderr}
		if o.dryRun {
			fmt.Fprintln(stdout, strings.Join(b.DeployCommand(o.services), " "))
			return nil
		}
		return b.Deploy(ctx, o.services, infra, dist)
	}

	man, err := deployer.BuildManifest(svcs, infra, dist, deployer.BuildOptions{BaseDir: filepath.Dir(o.services),
		DeployState: o.deployState, TargetProperty: o.targetProp})
	if err != nil {
		return err
	}
	return execute(ctx, o, store, old, man, infra, stdout, stderr)
}

// execute plans old → man and deploys it (or prints the plan with --dry-run).
func execute(ctx context.Context, o *options, store *deployer.Store, old, man *model.Manifest, infra model.Infrastructure, stdout, stderr io.Writer) error {
	token := ""
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("agent token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	hc, err := deployer.HTTPClientWithCA(o.caFile)
	if err != nil {
		return err
	}
	be := &deployer.AgentBackend{Token: token, Parallel: o.parallel, Store: store, HTTP: hc}
	if o.reconstruct {
		found := reconstruct.FromTargets(ctx, infra, o.targetProp, reconstruct.Agents{Backend: be})
		for t, err := range found.Unreachable {
			fmt.Fprintf(stderr, "dydisnix-env: reconstruct: target %s: %v\n", t, err)
		}
		old = reconstruct.Merge(old, found.Manifest)
	}
	unreach := be.Unreachable(ctx, old, man, 3*time.Second)
	plan, err := deployer.PlanTransition(old, man, deployer.PlanOptions{Unreachable: unreach, NoMigration: o.noMigration,
		DeleteState: o.deleteState, NoLock: o.noLock, NoUpgrade: o.noUpgrade})
	if err != nil {
		return err
	}
	if o.dryRun {
		var out []byte
		if o.format == "json" {
			out, _ = json.MarshalIndent(plan, "", "  ")
			out = append(out, '\n')
		} else {
			out = []byte(plan.String())
			if len(plan.Steps) == 0 {
				out = []byte("nothing to do\n")
			}
		}
		if o.out != "" {
			return model.WriteFileAtomic(o.out, out, 0o644)
		}
		_, err := stdout.Write(out)
		return err
	}
	for _, n := range plan.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	start := time.Now()
	gen, err := deployer.Deploy(ctx, be, store, plan, func(e deployer.StepEvent) {
		if e.Phase != deployer.PhaseStart {
			fmt.Fprintf(stderr, "[%d/%d] %s\n", e.Step.ID, len(plan.Steps), strings.TrimPrefix(e.String(), fmt.Sprintf("[%d] ", e.Step.ID)))
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "deployed generation %d (%d steps, %s)\n", gen, len(plan.Steps), time.Since(start).Round(time.Millisecond))
	if o.out != "" {
		return model.WriteManifest(o.out, man)
	}
	return nil
}

// PreviousDistribution returns the distribution a manifest records.
func PreviousDistribution(m *model.Manifest) model.Distribution {
	d := model.Distribution{}
	for _, x := range m.Mappings {
		name := m.Services[x.Service].Name
		d[name] = append(d[name], model.Mapping{Target: x.Target})
	}
	return d
}

func writeIDs(file string, ids *portassign.IDs) error {
	if strings.HasSuffix(file, ".nix") {
		return portassign.WriteFile(file, ids.Nix())
	}
	return portassign.WriteFile(file, ids.JSON())
}

// generations handles --undeploy, --rollback, --switch-to-generation and
// --list-generations.
func generations(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	store, err := deployer.OpenStore(o.stateDir, o.keep)
	if err != nil {
		return err
	}
	if o.listGenerations {
		gens, err := store.Generations()
		if err != nil {
			return err
		}
		for i, g := range gens {
			m, err := store.Manifest(g)
			if err != nil {
				return err
			}
			cur := ""
			if i == len(gens)-1 {
				cur = "   (current)"
			}
			fmt.Fprintf(stdout, "%4d   %d services on %d targets%s\n", g, len(m.Mappings), len(m.Targets()), cur)
		}
		return nil
	}
	if !o.dryRun {
		unlock, err := store.Lock()
		if err != nil {
			return err
		}
		defer unlock()
	}
	old, err := store.Latest()
	if err != nil {
		return err
	}
	var man *model.Manifest
	switch {
	case o.undeploy:
		var infra model.Infrastructure
		if o.infra != "" {
			if infra, err = model.LoadInfrastructure(o.infra); err != nil {
				return err
			}
		} else if old != nil {
			infra = old.Infrastructure
		}
		if man, err = deployer.BuildManifest(model.Services{}, infra, model.Distribution{}, deployer.BuildOptions{TargetProperty: o.targetProp}); err != nil {
			return err
		}
	case o.rollback:
		gens, err := store.Generations()
		if err != nil {
			return err
		}
		if len(gens) < 2 {
			return fmt.Errorf("--rollback: %s holds %d generation(s), need 2", o.stateDir, len(gens))
		}
		if man, err = store.Manifest(gens[len(gens)-2]); err != nil {
			return err
		}
	default:
		if man, err = store.Manifest(o.switchTo); err != nil {
			return fmt.Errorf("--switch-to-generation %d: %w", o.switchTo, err)
		}
	}
	// Artifacts of an older generation must still be on the coordinator.
	for _, s := range man.Services {
		if s.Artifact != "" {
			if d, err := deployer.FileDigest(s.Pkg); err != nil || d != s.Artifact {
				return fmt.Errorf("service %s: its artifact %s is no longer at %s", s.Name, s.Artifact, s.Pkg)
			}
		}
	}
	c := *man
	c.Generation = 0
	return execute(ctx, o, store, old, &c, man.Infrastructure, stdout, stderr)
}
