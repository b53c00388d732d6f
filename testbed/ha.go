package testbed

// AddCoordinator creates one more coordinator namespace on the testbed's
// network (named name, e.g. "coordinator2"), for a second
// dydisnix-self-adapt: a Harness whose HarnessConfig.Coordinator is the
// returned host runs its loop there. Several coordinators elect a leader
// over etcd (--registry); each in a namespace of its own can be cut off
// from etcd alone (see docs/registry.md).
func (tb *Testbed) AddCoordinator(name string) (*Host, error) {
	return tb.net.AddHost(name)
}
