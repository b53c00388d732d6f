package disnix

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"
)

func TestAddFlags(t *testing.T) {
	t.Parallel()
	var o Options
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.AddFlags(fs)
	err := fs.Parse([]string{"-p", "prof", "--coordinator-profile-path", "/c", "-m", "3", "--keep", "2",
		"--deploy-state", "--no-migration", "--delete-state", "--depth-first", "--build-on-targets", "--no-upgrade",
		"--no-lock", "--show-trace", "--extra-params", "{}", "-P", "pk.nix", "--interface", "disnix-soap-client",
		"--target-property", "targetEPR"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Profile: "prof", CoordinatorProfilePath: "/c", MaxConcurrentTransfers: 3, Keep: 2, DeployState: true,
		NoMigration: true, DeleteState: true, DepthFirst: true, BuildOnTargets: true, NoUpgrade: true, NoLock: true,
		ShowTrace: true, ExtraParams: "{}", Packages: "pk.nix", ClientInterface: "disnix-soap-client", TargetProperty: "targetEPR"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("parsed %+v\nwant %+v", o, want)
	}

	// A command that already owns -m and --keep keeps them.
	var own int
	var o2 Options
	fs2 := pflag.NewFlagSet("t2", pflag.ContinueOnError)
	fs2.IntVarP(&own, "parallel", "m", 1, "")
	fs2.Int("keep", 9, "")
	o2.AddFlags(fs2)
	if err := fs2.Parse([]string{"-m", "4", "--max-concurrent-transfers", "5", "--keep", "7"}); err != nil {
		t.Fatal(err)
	}
	if own != 4 || o2.MaxConcurrentTransfers != 5 || o2.Keep != 0 {
		t.Errorf("own -m %d, max-concurrent-transfers %d, keep %d", own, o2.MaxConcurrentTransfers, o2.Keep)
	}
}
