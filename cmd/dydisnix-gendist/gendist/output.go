package gendist

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dydisnix/dydisnix/model"
)

// encodeDistribution returns the distribution in format: json, nix (the
// original's Disnix distribution function, NixDistribution) or xml (the
// original's --output-xml form, model.DistributionXML).
func encodeDistribution(d model.Distribution, format string) ([]byte, error) {
	switch format {
	case "nix":
		return []byte(NixDistribution(d)), nil
	case "xml":
		return []byte(model.DistributionXML(d)), nil
	}
	return model.EncodeJSON(d)
}

// writeDistribution writes the distribution as the flags ask. With
// --no-out-link (and no --stdout) it is written to a file, -o or else a
// new distribution.<format> in a fresh directory of $TMPDIR, and the
// file's absolute path is printed, as the original printed the path of its
// Nix store file: a script's -d $(dydisnix-gendist ... --no-out-link)
// gets a distribution file. Otherwise the content goes to -o or stdout.
func writeDistribution(o *Options, d model.Distribution, stdout io.Writer) error {
	out, err := encodeDistribution(d, o.Out.Format)
	if err != nil {
		return err
	}
	write := func(file string, data []byte) error { return model.WriteFileAtomic(file, data, 0o644) }
	if !o.NoOutLink || o.Stdout {
		return o.Out.Write(out, stdout, write)
	}
	file := o.Out.File
	if file == "" {
		dir, err := os.MkdirTemp("", "dydisnix-gendist-")
		if err != nil {
			return fmt.Errorf("--no-out-link: %w", err)
		}
		file = filepath.Join(dir, "distribution."+o.Out.Format)
	}
	if err := write(file, out); err != nil {
		return err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("--no-out-link: %w", err)
	}
	_, err = fmt.Fprintln(stdout, abs)
	return err
}
