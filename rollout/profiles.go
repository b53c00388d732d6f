package rollout

import (
	"context"
	"maps"

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

// DrainingProfiles is Draining and Profiles in one question per agent: it
// asks every target of infra for its profile, which says whether the
// agent drains. Only the targets whose profile does not say (an agent
// older than Profile.Draining) or that gave none are asked /v1/health as
// Draining asks. Without the agent deployer it returns nils.
func (p *Pass) DrainingProfiles(ctx context.Context, infra model.Infrastructure) (map[string]bool, map[string]*agentapi.Profile) {
	if p.agents == nil {
		return nil, nil
	}
	profiles := p.Profiles(ctx, infra)
	draining, ask := make(map[string]bool, len(infra)), model.Infrastructure{}
	for name, t := range infra {
		if pr := profiles[name]; pr != nil && pr.Draining != nil {
			draining[name] = *pr.Draining
		} else {
			ask[name] = t
		}
	}
	if len(ask) > 0 {
		maps.Copy(draining, p.Draining(ctx, ask))
	}
	return draining, profiles
}
