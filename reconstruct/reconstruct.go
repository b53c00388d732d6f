// Package reconstruct rebuilds the coordinator's manifest from what the
// targets report (their profile manifests), as disnix-reconstruct does:
// services are the union by key, mappings the concatenation, the
// infrastructure the given one. With it, a redeploy after losing the
// coordinator's state deactivates what is obsolete instead of colliding
// with it, and a machine that returns with services from an old deployment
// is reconciled.
package reconstruct

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// ProfileSource returns the profile manifest of a target.
type ProfileSource interface {
	Profile(ctx context.Context, t *model.Target, defProp string) (*agentapi.Profile, error)
}

// Agents reads profiles from dydisnix-agents through an AgentBackend.
type Agents struct {
	Backend *deployer.AgentBackend
	// Timeout bounds each query (default 10s).
	Timeout time.Duration
}

// Profile implements ProfileSource.
func (a Agents) Profile(ctx context.Context, t *model.Target, defProp string) (*agentapi.Profile, error) {
	c, err := a.Backend.ClientFor(t, defProp)
	if err != nil {
		return nil, err
	}
	to := a.Timeout
	if to <= 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	return c.Profile(ctx)
}

// Result is a reconstructed manifest and the targets that could not be queried.
type Result struct {
	Manifest    *model.Manifest
	Unreachable map[string]error
}

// FromTargets queries every target of infra (in parallel) and aggregates
// their profile manifests into a manifest whose mappings carry the queried
// target's name. Unreachable targets are reported and skipped.
func FromTargets(ctx context.Context, infra model.Infrastructure, defProp string, src ProfileSource) *Result {
	type answer struct {
		target string
		p      *agentapi.Profile
		err    error
	}
	answers := make(chan answer, len(infra))
	var wg sync.WaitGroup
	for _, name := range infra.Names() {
		wg.Add(1)
		go func(t *model.Target) {
			defer wg.Done()
			p, err := src.Profile(ctx, t, defProp)
			answers <- answer{t.Name, p, err}
		}(infra[name])
	}
	wg.Wait()
	close(answers)
	res := &Result{Unreachable: map[string]error{}}
	man := &model.Manifest{Version: model.ManifestVersion, Services: map[string]model.ManifestService{},
		Infrastructure: infra.Clone(), TargetProperty: defProp}
	var list []answer
	for a := range answers {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].target < list[j].target })
	for _, a := range list {
		if a.err != nil {
			res.Unreachable[a.target] = a.err
			continue
		}
		for _, e := range a.p.Services {
			if _, ok := man.Services[e.Key]; !ok {
				man.Services[e.Key] = e.Service
			}
			m := model.ServiceMapping{Service: e.Key, Target: a.target, Container: e.Container}
			man.Mappings = append(man.Mappings, m)
			if e.Service.DeployState {
				man.Snapshots = append(man.Snapshots, m)
			}
		}
	}
	// A profile may reference a dependency key deployed on a target that
	// did not answer: drop dangling references from the service records
	// would change keys, so keep the records and add placeholders instead.
	for key, s := range man.Services {
		for _, d := range s.DependsOn {
			if _, ok := man.Services[d.Service]; !ok {
				man.Services[d.Service] = model.ManifestService{Name: fmt.Sprintf("unknown-%.8s", d.Service), Type: "unknown",
					DependsOn: []model.ServiceMapping{}, ConnectsTo: []model.ServiceMapping{}}
				_ = key
			}
		}
	}
	man.Normalize()
	res.Manifest = man
	return res
}

// Merge returns old extended with every mapping of found that old lacks
// (services found running on targets that old does not record): planning
// from the merged manifest deactivates such stale services or, when the
// new manifest wants them where they are, adopts them (no duplicate).
func Merge(old, found *model.Manifest) *model.Manifest {
	if old == nil {
		return found
	}
	if found == nil {
		return old
	}
	out := *old
	out.Services = map[string]model.ManifestService{}
	for k, v := range old.Services {
		out.Services[k] = v
	}
	out.Infrastructure = old.Infrastructure.Clone()
	for name, t := range found.Infrastructure {
		if _, ok := out.Infrastructure[name]; !ok {
			out.Infrastructure[name] = t.Clone()
		}
	}
	has := map[model.ServiceMapping]bool{}
	for _, m := range old.Mappings {
		has[m] = true
	}
	out.Mappings = append([]model.ServiceMapping(nil), old.Mappings...)
	out.Snapshots = append([]model.ServiceMapping(nil), old.Snapshots...)
	for _, m := range found.Mappings {
		if has[m] {
			continue
		}
		out.Mappings = append(out.Mappings, m)
		s := found.Services[m.Service]
		if _, ok := out.Services[m.Service]; !ok {
			out.Services[m.Service] = s
		}
		for _, d := range s.DependsOn {
			if _, ok := out.Services[d.Service]; !ok {
				out.Services[d.Service] = found.Services[d.Service]
			}
		}
		if s.DeployState {
			out.Snapshots = append(out.Snapshots, m)
		}
	}
	// Mappings old records on targets that answered and do not run them are gone.
	out.Normalize()
	return &out
}
