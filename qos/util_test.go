package qos

import (
	"errors"

	"github.com/dydisnix/dydisnix/model"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// plainMappings returns the mappings of plain target names.
func plainMappings(ts ...string) []model.Mapping {
	out := make([]model.Mapping, len(ts))
	for i, x := range ts {
		out[i] = model.Mapping{Target: x}
	}
	return out
}
