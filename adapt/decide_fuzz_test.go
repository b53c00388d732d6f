package adapt

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzDecide drives the decision step with arbitrary sequences of
// observations and checks its invariants, as Nomad tests its reconciler
// with properties: a deploy never overlaps a running one, never uses a
// target that is down or in probation, the decider never asks to be woken
// in the past (no busy loop), and once the network is quiet and deploys
// succeed, the deployed input converges to the current one.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{0, 0xff, 1, 20, 2, 0, 0x03, 1, 100, 3, 1, 200, 2})
	f.Add([]byte{0, 0x0f, 1, 50, 2, 0, 0x80, 0x0e, 1, 10, 0, 0x0f, 1, 255, 1, 255, 2})
	f.Add([]byte{4, 1, 5, 0, 0x05, 1, 30, 3, 1, 90, 4, 2, 1, 90, 2})
	f.Add([]byte{0, 1, 0, 0x81, 0, 1, 0, 0x80, 0, 1, 0, 0x80, 1, 255, 2, 1, 255})
	f.Add([]byte{0, 0x07, 1, 60, 2, 6, 7, 1, 10, 2, 6, 3, 0, 0x0f, 1, 60, 6, 4, 1, 60, 2, 6, 5, 1, 20, 2, 6, 8})
	names := []string{"a", "b", "c", "d"}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			return
		}
		d := NewDecider(testTiming())
		now := t0
		var running *DeployOrder
		check := func(a Action) {
			if !a.Wake.IsZero() && !a.Wake.After(now) {
				t.Fatalf("wake %v not after now %v", a.Wake.Sub(t0), now.Sub(t0))
			}
			if a.Deploy == nil {
				return
			}
			if running != nil {
				t.Fatalf("deploy ordered while one runs")
			}
			if a.Deploy.Since.After(now) {
				t.Fatalf("order answers a change in the future")
			}
			states := map[string]MemberState{}
			for _, m := range d.Members() {
				states[m.Target] = m.State
			}
			for name := range a.Deploy.Infrastructure {
				if st := states[name]; st != MemberUp && st != MemberLeaving {
					t.Fatalf("deploy uses %s in state %s", name, st)
				}
				if d.drained[name] {
					t.Fatalf("deploy uses drained %s", name)
				}
			}
			if d.Paused() {
				t.Fatalf("deploy ordered while paused")
			}
			running = a.Deploy
		}
		decide := func(o Observation) { check(d.Decide(o, now)) }
		decide(Observation{Kind: ObsModels, ModelsHash: "m0"})
		var last []string
		for i := 0; i < len(ops); i++ {
			arg := byte(0)
			if i+1 < len(ops) {
				arg = ops[i+1]
			}
			switch ops[i] % 7 {
			case 0: // snapshot: the low 4 bits say who is present, bit 7 graceful
				i++
				last = nil
				var evs []Event
				for j, n := range names {
					if arg&(1<<j) != 0 {
						last = append(last, n)
					} else if arg&0x80 != 0 {
						evs = append(evs, Event{Kind: EventRemoved, Target: n, Reason: "goodbye", At: now})
					}
				}
				decide(Observation{Kind: ObsSnapshot, Snapshot: Snapshot{Infrastructure: infraOf(last...), Events: evs, At: now}})
			case 1: // time passes
				i++
				now = now.Add(time.Duration(arg) * 50 * time.Millisecond)
				decide(Observation{Kind: ObsTick})
			case 2, 3: // the running deploy ends
				if running != nil {
					var err error
					if ops[i]%7 == 3 {
						err = errors.New("failed")
					}
					o := running
					running = nil
					decide(Observation{Kind: ObsDeployDone, Key: o.Key, Err: err})
				}
			case 4:
				i++
				decide(Observation{Kind: ObsModels, ModelsHash: fmt.Sprint("m", arg%3)})
			case 5:
				decide(Observation{Kind: ObsResync})
			case 6: // an operator's command
				i++
				ops := []ControlOp{ControlCordon, ControlDrain, ControlUncordon, ControlPause, ControlResume, ControlRedeploy}
				c := Control{Op: ops[arg%6]}
				if c.Op == ControlCordon || c.Op == ControlDrain || c.Op == ControlUncordon {
					c.Target = names[(arg/6)%4]
				}
				if d.CheckControl(c) == nil {
					decide(Observation{Kind: ObsControl, Control: c})
				}
			}
		}
		// Quiet network, deploys succeed, not paused: converge within an hour.
		decide(Observation{Kind: ObsControl, Control: Control{Op: ControlResume}})
		for step := 0; step < 2000; step++ {
			if running != nil {
				o := running
				running = nil
				decide(Observation{Kind: ObsDeployDone, Key: o.Key})
			}
			now = now.Add(5 * time.Second)
			decide(Observation{Kind: ObsTick})
		}
		if running != nil {
			o := running
			running = nil
			decide(Observation{Kind: ObsDeployDone, Key: o.Key})
		}
		if d.haveInfra && d.key != d.deployedKey {
			t.Fatalf("did not converge: key %s deployed %s", short(d.key), short(d.deployedKey))
		}
		for _, m := range d.Members() {
			present := false
			for _, n := range last {
				present = present || n == m.Target
			}
			if present != (m.State == MemberUp) {
				t.Fatalf("after an hour of quiet %s is %s (present %v)", m.Target, m.State, present)
			}
		}
	})
}
