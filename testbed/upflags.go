package testbed

import "github.com/spf13/pflag"

// AddFlags defines on fs the flags of dydisnix-testbed that fill u: the
// machines, the registry and subnets, the containers and the coordinators.
func (u *UpConfig) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&u.Dir, "dir", "", "`DIR` the testbed's directory (default /run/dydisnix-testbed as root, else /tmp/dydisnix-testbed-UID)")
	fs.IntVarP(&u.Machines, "machines", "n", 4, "`N` number of machines (up)")
	fs.StringVar(&u.PropertiesFile, "properties", "", "`FILE` the machines' properties (JSON, YAML or Nix): an infrastructure model for up, {properties} for add")
	fs.StringVar(&u.BinDir, "bin-dir", "", "`DIR` directory of dydisnix-agent, dydisnix-self-adapt and the example services (default: this program's)")
	fs.IntVar(&u.Etcd, "etcd", 0, "`N` up: run an etcd cluster of N members; agents register there and the loop reads it")
	fs.IntVar(&u.Far, "far", 0, "`N` up --etcd: N more machines (remote1, ...) on a second subnet behind a router (no mDNS across)")
	fs.BoolVar(&u.KeepState, "keep-state", false, "up: keep the machines' state of the last testbed in --dir (its services come back)")
	fs.StringSliceVar(&u.Containers, "containers", nil, "`LIST` up: containers every machine runs besides its agent: mysql-database (a MariaDB server of its own), postgresql-database (a PostgreSQL server; real root only)")
	fs.BoolVar(&u.Coordinator, "coordinator", false, "up: also run the loop (dydisnix-self-adapt) in the coordinator's namespace")
	fs.BoolVar(&u.Standby, "standby", false, "up --coordinator --etcd N: a second coordinator (namespace coordinator2); the two elect a leader")
	fs.StringVarP(&u.ServicesFile, "services", "s", "", "`FILE` up --coordinator: the services model (default: the example system)")
	fs.StringVarP(&u.PolicyFile, "qos", "q", "", "`FILE` up --coordinator: the QoS policy (default: the example policy)")
	fs.StringVarP(&u.AugmentFile, "augment", "a", "", "`FILE` up --coordinator: the augmentation model")
	fs.IntVar(&u.StatusPort, "status-port", 9470, "`PORT` on 127.0.0.1 of the host for the loop's status page (0: any free port; demo: any free port if it is taken)")
}
