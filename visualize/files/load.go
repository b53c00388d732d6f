package files

import (
	"context"
	"fmt"
	"os"

	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/visualize"
)

// LoadServices reads a services model: with xml the original's services
// XML, else a .json, .yaml/.yml or .nix model (evaluated with opts, e.g.
// the --extra-params expression).
func LoadServices(ctx context.Context, file string, xml bool, opts model.NixOptions) (model.Services, error) {
	if xml {
		data, err := read(file)
		if err != nil {
			return nil, err
		}
		return visualize.ServicesFromXML(data, file)
	}
	return model.LoadServicesContext(ctx, file, opts)
}

// LoadInfrastructure reads an infrastructure model: with xml Disnix's
// infrastructure XML, else a .json, .yaml/.yml or .nix model.
func LoadInfrastructure(ctx context.Context, file string, xml bool, opts model.NixOptions) (model.Infrastructure, error) {
	if xml {
		data, err := read(file)
		if err != nil {
			return nil, err
		}
		return visualize.InfrastructureFromXML(data, file)
	}
	return model.LoadInfrastructureContext(ctx, file, opts)
}

// LoadDocs reads a documentation configuration (--docs): with xml the
// original's docs XML, else a .json, .yaml/.yml or .nix file.
func LoadDocs(ctx context.Context, file string, xml bool, opts model.NixOptions) (*visualize.Docs, error) {
	if xml {
		data, err := read(file)
		if err != nil {
			return nil, err
		}
		return visualize.DocsFromXML(data, file)
	}
	v, err := model.LoadValueContext(ctx, file, model.KindPlain, nil, opts)
	if err != nil {
		return nil, err
	}
	return visualize.DocsFromValue(v, file)
}

func read(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return data, nil
}
