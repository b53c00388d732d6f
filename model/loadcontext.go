package model

import "context"

// LoadValueContext is LoadValue with options for a .nix file (extra
// parameters, default target property, timeout) and a context: cancelling
// ctx stops the Nix evaluation (see EvalNix). Other formats ignore ctx and
// opts.
func LoadValueContext(ctx context.Context, file string, kind Kind, infra Infrastructure, opts NixOptions) (any, error) {
	format, err := FormatOf(file)
	if err != nil {
		return nil, err
	}
	if format == FormatNix {
		return EvalNix(ctx, file, kind, infra, opts)
	}
	return LoadValue(file, kind, infra)
}

// LoadServicesContext is LoadServices with options for a .nix model (e.g.
// the --extra-params expression) and a context that stops its evaluation.
func LoadServicesContext(ctx context.Context, file string, opts NixOptions) (Services, error) {
	if s, ok, err := loadServicesJSON(file); ok {
		return s, err
	}
	v, err := LoadValueContext(ctx, file, KindServices, nil, opts)
	if err != nil {
		return nil, err
	}
	return servicesFromValue(v, file, true) // v is ours: no copy
}

// LoadInfrastructureContext is LoadInfrastructure with options for a .nix
// model and a context that stops its evaluation.
func LoadInfrastructureContext(ctx context.Context, file string, opts NixOptions) (Infrastructure, error) {
	v, err := LoadValueContext(ctx, file, KindInfrastructure, nil, opts)
	if err != nil {
		return nil, err
	}
	return InfrastructureFromValue(v, file)
}

// LoadDistributionContext is LoadDistribution with options for a .nix model
// (e.g. the default target property) and a context that stops its
// evaluation.
func LoadDistributionContext(ctx context.Context, file string, infra Infrastructure, opts NixOptions) (Distribution, error) {
	v, err := LoadValueContext(ctx, file, KindDistribution, infra, opts)
	if err != nil {
		return nil, err
	}
	return DistributionFromValue(v, file)
}
