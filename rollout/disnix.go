package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dydisnix/dydisnix/model"
)

// distFile records the distribution last deployed with Disnix: the
// previous distribution of the next policy run.
func (p *Pass) distFile() string { return filepath.Join(p.cfg.StateDir, "distribution.json") }

func (p *Pass) disnixCurrent() (model.Distribution, error) {
	if _, err := os.Stat(p.distFile()); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("deployed distribution: %w", err)
	}
	return model.LoadDistribution(p.distFile(), nil)
}

// applyDisnix plans and runs disnix-env (--reconstruct runs
// disnix-reconstruct first), then records the distribution. A dry run
// returns the command line.
func (p *Pass) applyDisnix(ctx context.Context, infra model.Infrastructure, req Request) (*Result, error) {
	if p.cfg.Reconstruct && !req.DryRun {
		if err := p.disnix.Reconstruct(ctx, infra); err != nil {
			return nil, fmt.Errorf("reconstruct: %w", err)
		}
	}
	prev, err := p.disnixCurrent()
	if err != nil {
		return nil, err
	}
	desired, err := p.planner.Plan(ctx, infra, prev, !req.DryRun)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	cmd := p.disnix.DeployCommand(p.cfg.Models.Services)
	res := &Result{Desired: desired, Command: cmd, Plan: []string{fmt.Sprint(cmd)}, Moved: Moved(prev, desired.Distribution)}
	if req.DryRun {
		return res, nil
	}
	if err := p.disnix.Deploy(ctx, p.cfg.Models.Services, infra, desired.Distribution); err != nil {
		return res, err
	}
	b, err := json.MarshalIndent(desired.Distribution, "", "  ")
	if err != nil {
		return res, err
	}
	return res, model.WriteFileAtomic(p.distFile(), append(b, '\n'), 0o600)
}
