package portassign

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// loadPlain reads a JSON, YAML or Nix file into its JSON-like value. A .nix
// file is evaluated as it is with nix-instantiate --eval --strict --json.
func loadPlain(file string) (any, error) {
	format, err := model.FormatOf(file)
	if err != nil {
		return nil, err
	}
	if format != model.FormatNix {
		return model.LoadValue(file, model.KindPlain, nil)
	}
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		return nil, fmt.Errorf("%s: evaluating a .nix file needs nix-instantiate on PATH: %w", file, err)
	}
	cmd := exec.Command(bin, "--eval", "--strict", "--json", "--", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: Nix evaluation failed: %s", file, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("%s: run nix-instantiate: %w", file, err)
	}
	return model.DecodeValue(stdout.Bytes(), model.FormatJSON, file)
}
