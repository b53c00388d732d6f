package adapt

import (
	"context"
	"time"
)

// Leader says who leads the coordinators when several run (high
// availability, see package ha) and since when, as this coordinator sees
// it. Only the leader deploys; the others stand by.
type Leader struct {
	// Leading is true when this coordinator leads.
	Leading bool `json:"leading"`
	// Name is the leading coordinator's name ("" when none is known).
	Name string `json:"name,omitempty"`
	// Since is when it was elected.
	Since time.Time `json:"since,omitzero"`
	// Revision is its election revision, the fencing revision its agent
	// requests carry.
	Revision int64 `json:"revision,omitempty"`
}

// Leadership tells the loop whether it leads (package ha's Elector
// implements it). Without one (Config.Leadership nil) the loop is the only
// coordinator and always deploys.
type Leadership interface {
	// Watch sends the current standing at once and again after every
	// change, until ctx ends.
	Watch(ctx context.Context) <-chan Leader
}

// leadership handles a new standing: the status shows it and the decider
// stands by or, once this coordinator leads, deploys whatever differs.
func (l *Loop) leadership(ld Leader) Observation {
	l.mu.Lock()
	l.status.Leader = &ld
	l.mu.Unlock()
	return Observation{Kind: ObsLeadership, Leading: ld.Leading}
}
