package adapt

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// chanLeadership hands the loop the standings a test sends.
type chanLeadership chan Leader

func (c chanLeadership) Watch(context.Context) <-chan Leader { return c }

func TestLoopDeploysOnlyWhileLeading(t *testing.T) {
	t.Parallel()
	lead := make(chanLeadership)
	h := newHarness(t, func(c *Config) {
		c.Leadership = lead
		c.Snapshotter, c.SnapshotSchedule = c.Pass.(fakePass).recordingDeployer, "@every 1s"
	})
	snaps := func() int {
		h.dep.mu.Lock()
		defer h.dep.mu.Unlock()
		return h.dep.snaps
	}
	h.snap(infraOf("a", "b"))
	h.noDeploy(5 * time.Second)
	if n := snaps(); n != 0 {
		t.Fatalf("a standby ran %d snapshot jobs", n)
	}
	if st := h.l.Status(); st.Phase != "standby" {
		t.Fatalf("phase of a coordinator that does not lead: %q, want standby", st.Phase)
	}
	if err := h.l.Control(context.Background(), Control{Op: ControlRedeploy}); err == nil || !strings.Contains(err.Error(), "stands by") {
		t.Fatalf("redeploy on a standby coordinator: %v", err)
	}

	lead <- Leader{Leading: true, Name: "me", Since: t0, Revision: 7}
	h.waitEvent(StepLeadership, 1)
	r := h.waitDeploy(5 * time.Second)
	if !slices.Contains(r.Causes, "this coordinator took over as the leader") {
		t.Errorf("causes of the first deploy as leader: %v", r.Causes)
	}
	if st := h.l.Status(); st.Leader == nil || !st.Leader.Leading || st.Leader.Name != "me" || !st.Leader.Since.Equal(t0) || st.Leader.Revision != 7 {
		t.Errorf("status leader: %+v", st.Leader)
	}
	want := "leader:</span> me (this coordinator) <span class=\"k\">since " + t0.UTC().Format(time.RFC3339) + " &middot; revision 7"
	if code, _, page := get(t, h.l.Handler(), "/"); code != 200 || !strings.Contains(page, want) {
		t.Errorf("the page (%d) does not show the leader %q", code, want)
	}

	h.advance(time.Second) // the schedule's next activation
	h.settle()

	lead <- Leader{Leading: false, Name: "other", Since: t0.Add(time.Minute), Revision: 9}
	h.waitEvent(StepLeadership, 2)
	before := snaps()
	if before == 0 {
		t.Error("the leader ran no snapshot job")
	}
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: "goodbye"})
	h.noDeploy(5 * time.Second)
	if n := snaps(); n != before {
		t.Errorf("a standby again: %d more snapshot jobs", n-before)
	}
	if st := h.l.Status(); st.Phase != "standby" || st.Leader.Leading || st.Leader.Name != "other" {
		t.Fatalf("after losing the lead: phase %q, leader %+v", st.Phase, st.Leader)
	}
}
