package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
)

// ListGenerations writes one line per manifest generation, the newest
// marked as current.
func (p *Pass) ListGenerations(w io.Writer) error {
	if p.store == nil {
		return errors.New("generations need the agent deployer (use disnix-env --list-generations for Disnix)")
	}
	gens, err := p.store.Generations()
	if err != nil {
		return err
	}
	for i, g := range gens {
		m, err := p.store.Manifest(g)
		if err != nil {
			return err
		}
		cur := ""
		if i == len(gens)-1 {
			cur = "   (current)"
		}
		if _, err := fmt.Fprintf(w, "%4d   %d services on %d targets%s\n", g, len(m.Mappings), len(m.Targets()), cur); err != nil {
			return err
		}
	}
	return nil
}

// Undeployed returns the manifest without any service, on the
// infrastructure of infraFile (the newest generation's when it is "").
func (p *Pass) Undeployed(infraFile string) (*model.Manifest, error) {
	if p.store == nil {
		return nil, errors.New("--undeploy needs the agent deployer (use disnix-env for Disnix)")
	}
	var infra model.Infrastructure
	if infraFile != "" {
		var err error
		if infra, err = model.LoadInfrastructure(infraFile); err != nil {
			return nil, err
		}
	} else {
		old, err := p.store.Latest()
		if err != nil {
			return nil, err
		}
		if old != nil {
			infra = old.Infrastructure
		}
	}
	return deployer.BuildManifest(model.Services{}, infra, model.Distribution{}, deployer.BuildOptions{TargetProperty: p.cfg.TargetProperty})
}

// Generation returns manifest generation gen; gen 0 means the one before
// the newest (a rollback). Its artifacts must still be on the coordinator.
func (p *Pass) Generation(gen int) (*model.Manifest, error) {
	if p.store == nil {
		return nil, errors.New("generations need the agent deployer (use disnix-env for Disnix)")
	}
	what := fmt.Sprintf("generation %d", gen)
	if gen == 0 {
		gens, err := p.store.Generations()
		if err != nil {
			return nil, err
		}
		if len(gens) < 2 {
			return nil, fmt.Errorf("rollback: %s holds %d generation(s), need 2", p.cfg.StateDir, len(gens))
		}
		gen, what = gens[len(gens)-2], "rollback"
	}
	man, err := p.store.Manifest(gen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for _, s := range man.Services {
		if s.Artifact != "" {
			if d, err := deployer.ArtifactDigest(s); err != nil || d != s.Artifact {
				return nil, fmt.Errorf("%s: service %s: its artifact %s is no longer at %s", what, s.Name, s.Artifact, s.Pkg)
			}
		}
	}
	return man, nil
}

// Render writes the plan of a dry run: the numbered steps as text
// ("nothing to do" when there are none) or the plan as JSON (format
// "json"); the Disnix command line with the Disnix deployer.
func (r *Result) Render(format string) ([]byte, error) {
	switch {
	case r.Command != nil:
		return []byte(strings.Join(r.Command, " ") + "\n"), nil
	case r.Transition == nil:
		return nil, nil
	case format == "json":
		b, err := json.MarshalIndent(r.Transition, "", "  ")
		return append(b, '\n'), err
	case len(r.Transition.Steps) == 0:
		return []byte("nothing to do\n"), nil
	}
	return []byte(r.Transition.String()), nil
}
