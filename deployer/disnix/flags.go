package disnix

import (
	"github.com/spf13/pflag"
)

// AddFlags registers the Disnix options on fs under the original tools'
// names (-p/--profile, --coordinator-profile-path, -m/--max-concurrent-transfers,
// --keep, --deploy-state, --no-migration, --delete-state, --depth-first,
// --build-on-targets, --no-upgrade, --no-lock, --show-trace, --extra-params,
// -P/--packages, --interface, --target-property). A flag whose name is
// already defined on fs is skipped (so a command that owns e.g. -m keeps
// its own), as is a shorthand already taken.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	short := func(s string) string {
		if s != "" && fs.ShorthandLookup(s) != nil {
			return ""
		}
		return s
	}
	str := func(p *string, name, sh, usage string) {
		if fs.Lookup(name) == nil {
			fs.StringVarP(p, name, short(sh), *p, usage)
		}
	}
	num := func(p *int, name, sh, usage string) {
		if fs.Lookup(name) == nil {
			fs.IntVarP(p, name, short(sh), *p, usage)
		}
	}
	flag := func(p *bool, name, usage string) {
		if fs.Lookup(name) == nil {
			fs.BoolVar(p, name, *p, usage)
		}
	}
	str(&o.Profile, "profile", "p", "Disnix profile name (default: $DISNIX_PROFILE, else default)")
	str(&o.CoordinatorProfilePath, "coordinator-profile-path", "", "directory of the coordinator profile (Disnix default /nix/var/nix/profiles/per-user/$USER/disnix-coordinator)")
	num(&o.MaxConcurrentTransfers, "max-concurrent-transfers", "m", "maximum number of concurrent closure and snapshot transfers (Disnix default 2)")
	num(&o.Keep, "keep", "", "number of snapshot generations to keep (Disnix default 1)")
	flag(&o.DeployState, "deploy-state", "manage the state of every service (default deployState = true)")
	flag(&o.NoMigration, "no-migration", "do not migrate the state of stateful services")
	flag(&o.DeleteState, "delete-state", "delete the obsolete state of moved or removed services")
	flag(&o.DepthFirst, "depth-first", "snapshot, transfer and clean per target (less disk space)")
	flag(&o.BuildOnTargets, "build-on-targets", "build every service on its target")
	flag(&o.NoUpgrade, "no-upgrade", "ignore the previous deployment")
	flag(&o.NoLock, "no-lock", "do not lock the targets")
	flag(&o.ShowTrace, "show-trace", "show Nix evaluation traces")
	str(&o.ExtraParams, "extra-params", "", "Nix expression of extra parameters for the services and distribution models")
	str(&o.Packages, "packages", "P", "packages model (extra packages per target)")
	str(&o.ClientInterface, "interface", "", "client interface used to reach the targets (default: $DISNIX_CLIENT_INTERFACE, else disnix-ssh-client)")
	str(&o.TargetProperty, "target-property", "", "target property holding the address (default: $DISNIX_TARGET_PROPERTY, else hostname)")
}
