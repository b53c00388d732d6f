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
	out := map[string]*agentapi.Profile{}
	for _, name := range infra.Names() {
		c, err := p.agents.ClientFor(infra[name], p.cfg.TargetProperty)
		if err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, p.cfg.ProbeTimeout)
		prof, err := c.Profile(pctx)
		cancel()
		if err == nil {
			out[name] = prof
		}
	}
	return out
}
