package portassign

import (
	"fmt"

	"github.com/dydisnix/dydisnix/model"
)

// LoadResources reads an ID resources model (.json, .yaml or .nix).
func LoadResources(file string) (Resources, error) {
	v, err := model.LoadValue(file, model.KindPlain, nil)
	if err != nil {
		return nil, fmt.Errorf("load ID resources: %w", err)
	}
	return ParseResources(v, file)
}

// LoadIDs reads an ids file (.json, .yaml or .nix).
func LoadIDs(file string) (*IDs, error) {
	v, err := model.LoadValue(file, model.KindPlain, nil)
	if err != nil {
		return nil, fmt.Errorf("load ids: %w", err)
	}
	return ParseIDs(v, file)
}

// LoadPortConfig reads the configuration of a ports file (.json, .yaml or
// .nix); its "ports" key is ignored.
func LoadPortConfig(file string) (*PortConfiguration, error) {
	v, err := model.LoadValue(file, model.KindPlain, nil)
	if err != nil {
		return nil, fmt.Errorf("load ports: %w", err)
	}
	return ParsePortConfig(v, file)
}

// WriteFile writes an ids or ports file atomically: readers see the old or
// the new content, and a failed write leaves the old file intact.
func WriteFile(file string, data []byte) error {
	return model.WriteFileAtomic(file, data, 0o644)
}
