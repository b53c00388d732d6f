package portassign

import (
	"errors"
	"fmt"
	"io/fs"

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

// LoadPreviousIDs reads the ids file of the previous run. It returns
// (nil, nil) only when the file does not exist (the first run); any other
// problem (a file that cannot be read, a directory in its place, a
// malformed file) is an error, so that a broken file never reads as "no
// previous IDs" and every ID is reassigned.
func LoadPreviousIDs(file string) (*IDs, error) {
	ids, err := LoadIDs(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("previous ids file: %w", err)
	}
	return ids, nil
}

// LoadPreviousPortConfig reads the configuration of the ports file of the
// previous run. It returns (nil, nil) only when the file does not exist
// (the first run); any other problem is an error, so that a broken file
// never reads as "no previous ports" and every port is reassigned.
func LoadPreviousPortConfig(file string) (*PortConfiguration, error) {
	conf, err := LoadPortConfig(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("previous ports file: %w", err)
	}
	return conf, nil
}

// WriteFile writes an ids or ports file atomically: readers see the old or
// the new content, and a failed write leaves the old file intact.
func WriteFile(file string, data []byte) error {
	return model.WriteFileAtomic(file, data, 0o644)
}
