package adapt

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// control applies an operator's command and waits until the loop has
// handled it (its StepControl step).
func (h *harness) control(c Control) error {
	h.t.Helper()
	n := h.count(StepControl)
	err := h.l.Control(context.Background(), c)
	h.waitEvent(StepControl, n+1)
	return err
}

func (h *harness) lastRequestCordon() []string {
	h.dep.mu.Lock()
	defer h.dep.mu.Unlock()
	return h.dep.reqs[len(h.dep.reqs)-1].Cordon
}

func TestLoopPauseResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	if err := h.control(Control{Op: ControlPause}); err != nil {
		t.Fatal(err)
	}
	h.snap(infraOf("a", "b"))
	h.noDeploy(3 * time.Second)
	if p := h.l.Status().Phase; p != "paused" {
		t.Errorf("phase %q while paused, want paused", p)
	}
	if err := h.control(Control{Op: ControlRedeploy}); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Errorf("redeploy while paused: %v, want an error saying paused", err)
	}
	if err := h.control(Control{Op: ControlResume}); err != nil {
		t.Fatal(err)
	}
	r := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a b]" {
		t.Fatalf("deploy after resume = %+v", r)
	}
}

func TestLoopRedeployRunsAPassWhenNothingChanged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	if err := h.control(Control{Op: ControlRedeploy}); err != nil {
		t.Fatal(err)
	}
	r := h.waitDeploy(5 * time.Second)
	if r.Result != "success" || !slices.Contains(r.Causes, "redeploy asked by the operator") {
		t.Fatalf("redeploy = %+v", r)
	}
	h.dep.mu.Lock()
	n := len(h.dep.reqs)
	h.dep.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d passes applied, want 2", n)
	}
}

func TestLoopCordonDrainUncordon(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	if err := h.control(Control{Op: ControlCordon, Target: "x"}); err == nil || !strings.Contains(err.Error(), `unknown target "x"`) {
		t.Errorf("cordon of an unknown target: %v", err)
	}
	// cordon: nothing moves now; the next pass carries the cordon
	if err := h.control(Control{Op: ControlCordon, Target: "b"}); err != nil {
		t.Fatal(err)
	}
	h.noDeploy(2 * time.Second)
	h.snap(infraOf("a", "b", "c"))
	r := h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a b c]" || fmt.Sprint(h.lastRequestCordon()) != "[b]" {
		t.Fatalf("deploy after cordon = %+v, cordon %v", r, h.lastRequestCordon())
	}
	// drain: b is no longer used, its services move away
	if err := h.control(Control{Op: ControlDrain, Target: "b"}); err != nil {
		t.Fatal(err)
	}
	r = h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a c]" {
		t.Fatalf("deploy after drain = %+v", r)
	}
	for _, s := range r.Distribution.Names() {
		if slices.Contains(r.Distribution.Targets(s), "b") {
			t.Errorf("%s still on drained b", s)
		}
	}
	st := h.l.Status()
	i := slices.IndexFunc(st.Targets, func(m MemberStatus) bool { return m.Target == "b" })
	if i < 0 || !st.Targets[i].Drained || !st.Targets[i].Cordoned || st.Targets[i].State != MemberUp {
		t.Errorf("status of b = %+v", st.Targets)
	}
	// uncordon: b is used again, without cordon
	if err := h.control(Control{Op: ControlUncordon, Target: "b"}); err != nil {
		t.Fatal(err)
	}
	r = h.waitDeploy(5 * time.Second)
	if fmt.Sprint(r.Targets) != "[a b c]" || len(h.lastRequestCordon()) != 0 {
		t.Fatalf("deploy after uncordon = %+v, cordon %v", r, h.lastRequestCordon())
	}
}

func TestLoopStatusHasTheRunningStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.startBlockedDeploy()
	run := h.l.Status().Running
	if run == nil || run.Step != 1 || run.Of != 3 || run.Op != "activate" || run.Service != "web" || run.Target != "a" || run.Since.IsZero() {
		t.Fatalf("running step = %+v", run)
	}
	close(h.dep.block)
	h.waitDeploy(time.Second)
	if run := h.l.Status().Running; run != nil {
		t.Fatalf("running step after the deploy = %+v", run)
	}
}

// TestServeControlSocket: the socket is private, a stale one is replaced,
// one a running loop serves is not taken over.
func TestServeControlSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ControlSocketName)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // a stale socket file stays
	l, err := New(Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{}, &recordingDeployer{}}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serveControl(l, path, zap.NewNop())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer srv.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want mode 0600", fi, err)
	}
	if _, err := serveControl(l, path, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "another loop serves it") {
		t.Fatalf("second loop on the same socket: %v", err)
	}
}
