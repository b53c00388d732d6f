package qos

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// gendistQoSModel is gendistPolicy as a QoS model of the original's form.
const gendistQoSModel = `{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:

filters.divideRoundRobin {
  distribution = filters.mapAttrOnList {
    inherit services infrastructure;
    distribution = initialDistribution;
    serviceProperty = "type";
    targetPropertyList = "supportedTypes";
  };
}
`

// BenchmarkGendistQoSModel5000x500 is BenchmarkGendist5000x500's whole run
// (load and validate the models, load -q, run, encode) with the type
// filter + round robin given as a YAML policy and as a QoS model in Nix
// (-q qos.nix): the ratio is the cost of the Nix front door. The
// original took 2.2 s for the Nix model.
func BenchmarkGendistQoSModel5000x500(b *testing.B) {
	testenv.NeedCommand(b, "nix-instantiate")
	sf, inf := writeGendistModels(b, 5000, 500)
	dir := b.TempDir()
	files := map[string]string{"yaml": filepath.Join(dir, "qos.yaml"), "nix": filepath.Join(dir, "qos.nix")}
	texts := map[string]string{"yaml": gendistPolicy, "nix": gendistQoSModel}
	var want model.Distribution
	for _, kind := range []string{"yaml", "nix"} {
		if err := os.WriteFile(files[kind], []byte(texts[kind]), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				svcs, err := model.LoadServices(sf)
				if err != nil {
					b.Fatal(err)
				}
				if err := svcs.Validate(sf); err != nil {
					b.Fatal(err)
				}
				infra, err := model.LoadInfrastructure(inf)
				if err != nil {
					b.Fatal(err)
				}
				p, err := DefaultRegistry().LoadQoS(files[kind], NixModelOptions{})
				if err != nil {
					b.Fatal(err)
				}
				res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Empty: RejectRemoved})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := model.EncodeJSON(res.Distribution); err != nil {
					b.Fatal(err)
				}
				if want == nil {
					want = res.Distribution
				} else if !model.Equal(distValue(want), distValue(res.Distribution)) {
					b.Fatal("the QoS model and the YAML policy disagree")
				}
			}
		})
	}
}

func distValue(d model.Distribution) any {
	data, _ := model.EncodeJSON(d)
	v, _ := model.DecodeValue(data, model.FormatJSON, "d")
	return v
}
