package rollout

import (
	"context"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// Profiles asks the agent of every target of infra for its profile (what
// it runs, with each service's health and restart count). Targets that do
// not answer are left out; without the agent deployer it returns nil.
func (p *Pass) Profiles(ctx context.Context, infra model.Infrastructure) map[string]*agentapi.Profile {
	if p.agents == nil {
		return nil
	}
	return p.agents.Profiles(ctx, infra, p.cfg.TargetProperty, p.cfg.ProbeTimeout)
}
