package testbed

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestScaleInvariants runs the scale scenario of bench-scale at N = 10 (100
// services) and checks what must hold at every N, without timing: a
// pre-emptive snapshot completes in the idle window beside the loop's
// resyncs, the crashed machine's services spread over the survivors (the
// victim hosts 10 services, 9 survive: at most 2 on one), and down leaves
// no namespace or process of the run behind.
func TestScaleInvariants(t *testing.T) {
	needRoot(t)
	cfg := ScaleConfig{Dir: filepath.Join(t.TempDir(), "scale"), BinDir: buildBinaries(t), Machines: 10, Idle: 6 * time.Second, SnapshotSchedule: "@every 2s"}
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	r, err := RunScale(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.SnapshotDuringIdle {
		t.Errorf("no snapshot completed in the %s idle window (newest %.1f s old)", cfg.Idle, r.SnapshotAge.Value)
	}
	survivors := cfg.Machines - 1
	bound := (r.Displaced + survivors - 1) / survivors
	if r.Displaced < 2 || r.MostOnOneSurvivor.Value > float64(bound) {
		t.Errorf("%d displaced services, %v on one survivor: want at most %d", r.Displaced, r.MostOnOneSurvivor.Value, bound)
	}
	if len(r.LeftAfterDown) > 0 {
		t.Errorf("left after down: %v", r.LeftAfterDown)
	}
	machines := filepath.Join(cfg.Dir, "testbed", "machines")
	if left, _ := filepath.Glob(filepath.Join(machines, "*", "state")); len(left) > 0 {
		t.Errorf("machines' state (their artifacts) left after the run: %v", left)
	}
	if _, err := os.Stat(machines); err != nil {
		t.Errorf("the machines' directory is gone: %v", err)
	}
	for _, log := range []string{filepath.Join(cfg.Dir, "self-adapt.log"), filepath.Join(machines, "machine1", "agent.log")} {
		if _, err := os.Stat(log); err != nil {
			t.Errorf("a log is not kept: %v", err)
		}
	}
}
