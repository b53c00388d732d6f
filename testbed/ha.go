package testbed

import (
	"fmt"
	"path/filepath"
)

// AddCoordinator creates one more coordinator namespace on the testbed's
// network (named name, e.g. "coordinator2"), for a second
// dydisnix-self-adapt: a Harness whose HarnessConfig.Coordinator is the
// returned host runs its loop there. Several coordinators elect a leader
// over etcd (--registry); each in a namespace of its own can be cut off
// from etcd alone (see docs/registry.md).
func (tb *Testbed) AddCoordinator(name string) (*Host, error) {
	return tb.net.AddHost(name)
}

// startStandby starts the daemon's second coordinator (CoordinatorConfig.Standby).
func (tb *Testbed) startStandby(cc CoordinatorConfig) error {
	if len(tb.etcd) == 0 {
		return fmt.Errorf("a second coordinator needs the testbed's etcd (Config.Etcd): the coordinators elect their leader there")
	}
	host, err := tb.AddCoordinator("coordinator2")
	if err != nil {
		return err
	}
	h, err := AttachHarness(tb, HarnessConfig{Dir: filepath.Join(tb.cfg.Dir, "coordinator2"), Coordinator: host,
		ServicesFile: cc.ServicesFile, PolicyFile: cc.PolicyFile, AugmentFile: cc.AugmentFile})
	if err != nil {
		return err
	}
	if err := h.StartLoop(); err != nil {
		return err
	}
	tb.OnClose(h.StopLoop)
	return nil
}
