package model

import "fmt"

// evalNixModel evaluates a .nix model file with nix-instantiate.
// TODO(model helper): real implementation.
func evalNixModel(file string, kind Kind, infra Infrastructure) (any, error) {
	return nil, fmt.Errorf("%s: Nix models are not supported yet", file)
}
