package gendist

import (
	"github.com/dydisnix/dydisnix/model"
)

// NixDistribution renders a distribution as a Disnix distribution function.
// When every mapping is a plain target name it is byte for byte what the
// original gendist wrote (xsl/distribution_expr.xsl,
// model.DistributionNixReference):
//
//	{infrastructure}:
//
//	{
//	  svc = [
//	    infrastructure.t1
//	  ];
//	}
//
// The original silently dropped {target, container} records; when there is
// one, the whole distribution is written with model.DistributionNix, whose
// services with records use Disnix's targets form
// (svc = { targets = [ { target = infrastructure.t; container = "c"; } ]; };),
// so containers survive. Names that are not Nix identifiers are quoted.
func NixDistribution(d model.Distribution) string {
	for _, ms := range d {
		for _, m := range ms {
			if m.Record {
				return model.DistributionNix(d)
			}
		}
	}
	return model.DistributionNixReference(d)
}
