package ha

import (
	"context"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

// Pass is a rollout.Pass that deploys only while its coordinator leads:
// Apply and Snapshot fail with ErrNotLeader on a standby, and a deploy of a
// term that ends is cancelled (it stops at its next step and rolls back;
// steps the agents already saw from the new leader's revision are refused).
// The rollout.Pass must share its record through the elector's State and
// fence its agent requests with Elector.Fence (see Configure).
type Pass struct {
	*rollout.Pass
	e *Elector
}

// Configure sets what a pass of a coordinator among several needs: the
// shared record in etcd, the fencing revision on every agent request, and
// --reconstruct (a new leader verifies the record against what the
// targets run).
func (e *Elector) Configure(cfg *rollout.Config) {
	cfg.Shared, cfg.Fence, cfg.Reconstruct = e.State(), e.Fence, true
}

// NewPass wraps p, made with a Config that Configure set.
func (e *Elector) NewPass(p *rollout.Pass) *Pass { return &Pass{Pass: p, e: e} }

// Apply runs the pass while this coordinator leads (adapt.Pass).
func (p *Pass) Apply(ctx context.Context, infra model.Infrastructure, req rollout.Request) (*rollout.Result, error) {
	tctx, release, err := p.e.Term(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return p.Pass.Apply(tctx, infra, req)
}

// Snapshot snapshots while this coordinator leads (adapt.Snapshotter).
func (p *Pass) Snapshot(ctx context.Context) error {
	tctx, release, err := p.e.Term(ctx)
	if err != nil {
		return err
	}
	defer release()
	return p.Pass.Snapshot(tctx)
}
