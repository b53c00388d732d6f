package rollout

import (
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/cli"
)

// AddFlags defines on fs the flags of a deploy pass that dydisnix-env and
// dydisnix-self-adapt share, under the original tools' names: the models
// (-s, -q, -F, -a, --ports, --id-resources, --ids,
// --ids-service-property), --deployer, --target-property,
// -m/--max-concurrent-transfers, --max-per-target, --max-uploads, --keep, the transition options,
// --reconstruct and the Disnix backend's flags. The agents' token and CA,
// the state directory and logging are internal/cli's shared flags. With
// oneShot, --no-upgrade is defined too (a loop always upgrades).
func (c *Config) AddFlags(fs *pflag.FlagSet, oneShot bool) {
	m := &c.Models
	fs.StringVarP(&m.Services, "services", "s", "", "`FILE` services model (required)")
	fs.StringVarP(&m.QoS, "qos", "q", "", "`POLICY` QoS model: a Nix QoS model {services, infrastructure, initialDistribution, previousDistribution, filters, lib}: ..., a policy file or builtin:NAME (required)")
	fs.StringVarP(&m.Filters, "filters", "F", "", "`FILE` filter catalog {pkgs, referenceFilters}: { name = filter; ... } replacing the filters the Nix QoS model gets")
	fs.StringVarP(&m.Augment, "augment", "a", "", "`FILE` augmentation model (secrets added on the coordinator)")
	fs.StringVar(&m.Ports, "ports", "", "ports `FILE`: assign ports (portAssign), keep the file")
	fs.StringVar(&m.IDResources, "id-resources", "", "`FILE` ID resources model (with --ids)")
	fs.StringVar(&m.IDs, "ids", "", "ids `FILE` to assign IDs into (with --id-resources)")
	fs.StringVar(&m.IDsServiceProperty, "ids-service-property", "", "service `PROPERTY` listing a service's ID resources")
	cli.ChoiceVarP(fs, &c.Deployer, "deployer", "", "", "`NAME` of the deployer: agent or disnix (default: agent when the agents' credentials are given, else disnix when disnix-env is on PATH, else agent)", "agent", "disnix")
	fs.StringVar(&c.TargetProperty, "target-property", "", "target `PROPERTY` holding the address a target is reached at, as in Disnix: the agent's URL or host (default agentURL; with --deployer disnix, $DISNIX_TARGET_PROPERTY, else hostname)")
	fs.IntVarP(&c.Parallel, "max-concurrent-transfers", "m", 0, "steps run in parallel over all targets (0: no global bound; with --deployer disnix, 0 means 4)")
	fs.IntVar(&c.PerTarget, "max-per-target", 4, "steps run in parallel on one target")
	fs.IntVar(&c.Uploads, "max-uploads", deployer.DefaultUploads, "artifact uploads run in parallel over all targets, in step order (0: no bound; the agent deployer's)")
	fs.IntVar(&c.Keep, "keep", 3, "snapshot generations kept in the store")
	t := &c.Transition
	fs.BoolVar(&t.DeleteState, "delete-state", false, "delete the old copy of moved state")
	fs.BoolVar(&t.NoMigration, "no-migration", false, "do not move state")
	fs.BoolVar(&t.DeployState, "deploy-state", false, "every service's state is managed (deployState default)")
	fs.BoolVar(&t.NoLock, "no-lock", false, "do not lock the targets")
	if oneShot {
		fs.BoolVar(&t.NoUpgrade, "no-upgrade", false, "ignore the previous deployment (activate everything)")
	}
	fs.BoolVar(&c.Reconstruct, "reconstruct", false, "merge what the targets report into the previous manifest before planning")
	c.Disnix.AddFlags(fs) // the Disnix backend's own flags (-p, --coordinator-profile-path, ...)
}

// ChooseDeployer settles a --deployer that was not given. With the agents'
// credentials configured it is the agents; without them, and with Disnix's
// disnix-env installed (in DisnixBin, else on PATH), it is Disnix, the
// original's only deployer, so a Disnix user's command line works unchanged;
// otherwise it is the agents, whose usage error names the credentials to
// give.
func (c *Config) ChooseDeployer(agentConfigured bool) {
	if c.Deployer != "" {
		return
	}
	c.Deployer = "agent"
	if agentConfigured {
		return
	}
	if c.DisnixBin != "" {
		if st, err := os.Stat(filepath.Join(c.DisnixBin, "disnix-env")); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			c.Deployer = "disnix"
		}
		return
	}
	if _, err := exec.LookPath("disnix-env"); err == nil {
		c.Deployer = "disnix"
	}
}

// Check reports the usage errors of the flags AddFlags defines that both
// commands check alike: --id-resources without --ids (or the reverse) and
// a bound on the steps out of range, each naming its flag.
func (c *Config) Check() error {
	switch {
	case (c.Models.IDResources == "") != (c.Models.IDs == ""):
		return cli.Usagef("--id-resources and --ids go together")
	case c.Parallel < 0:
		return cli.Usagef("-m: expected 0 (no global bound) or a positive number, got %d", c.Parallel)
	case c.PerTarget < 1:
		return cli.Usagef("--max-per-target: expected a positive number, got %d", c.PerTarget)
	case c.Uploads < 0:
		return cli.Usagef("--max-uploads: expected 0 (no bound) or a positive number, got %d", c.Uploads)
	}
	return nil
}

// UseAgents reads the agents' token and TLS settings from a into c, when
// a names a token file (else c reaches no agent).
func (c *Config) UseAgents(a *cli.Agent) error {
	if a.TokenFile == "" {
		return nil
	}
	var err error
	if c.Token, err = a.Token(); err != nil {
		return err
	}
	c.Agents, err = a.TLS()
	return err
}
