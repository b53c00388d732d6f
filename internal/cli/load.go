package cli

import (
	"context"

	"github.com/dydisnix/dydisnix/model"
)

// Load reads a model file of kind: by its extension (.json, .yaml/.yml,
// .nix, evaluated with opts and infra), or as the original's XML with
// --xml (model.LoadXMLValue; the XML of a distribution names its targets,
// so infra is not needed).
func (m *Models) Load(ctx context.Context, file string, kind model.Kind, infra model.Infrastructure, opts model.NixOptions) (any, error) {
	if m.XML {
		return model.LoadXMLValue(file)
	}
	return model.LoadValueContext(ctx, file, kind, infra, opts)
}

// LoadServices reads the services model (-s), see Load.
func (m *Models) LoadServices(ctx context.Context, opts model.NixOptions) (model.Services, error) {
	if !m.XML {
		return model.LoadServicesContext(ctx, m.Services, opts)
	}
	v, err := model.LoadXMLValue(m.Services)
	if err != nil {
		return nil, err
	}
	return model.ServicesFromValue(v, m.Services)
}

// LoadInfrastructure reads the infrastructure model (-i), see Load.
func (m *Models) LoadInfrastructure(ctx context.Context, opts model.NixOptions) (model.Infrastructure, error) {
	if !m.XML {
		return model.LoadInfrastructureContext(ctx, m.Infrastructure, opts)
	}
	v, err := model.LoadXMLValue(m.Infrastructure)
	if err != nil {
		return nil, err
	}
	return model.InfrastructureFromValue(v, m.Infrastructure)
}

// LoadDistribution reads the distribution model (-d), see Load.
func (m *Models) LoadDistribution(ctx context.Context, infra model.Infrastructure, opts model.NixOptions) (model.Distribution, error) {
	if !m.XML {
		return model.LoadDistributionContext(ctx, m.Distribution, infra, opts)
	}
	v, err := model.LoadXMLValue(m.Distribution)
	if err != nil {
		return nil, err
	}
	return model.DistributionFromValue(v, m.Distribution)
}
