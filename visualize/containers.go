package visualize

import "github.com/dydisnix/dydisnix/model"

// WithContainers returns dist with every mapping's container named: a
// mapping that names none runs in the container of its service's type, as
// Disnix deploys it, so a deployment diagram draws each machine's
// containers as boxes holding their services. dist is not changed.
func WithContainers(dist model.Distribution, svcs model.Services) model.Distribution {
	out := dist.Clone()
	for name, ms := range out {
		s := svcs[name]
		if s == nil || s.Type == "" {
			continue
		}
		for i := range ms {
			if ms[i].Container == "" {
				ms[i].Container = s.Type
			}
		}
	}
	return out
}
