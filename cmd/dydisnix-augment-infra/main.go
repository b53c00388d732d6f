// Command dydisnix-augment-infra prints an infrastructure model augmented
// with what discovery must not carry (secrets, site settings).
//
//	dydisnix-augment-infra -i INFRA -a AUGMENT [--format json|nix] [-o F]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
)

const usage = `Usage: dydisnix-augment-infra -i INFRASTRUCTURE -a AUGMENT [--format json|nix] [-o FILE]

Applies an augmentation to an infrastructure model and prints the result.
AUGMENT is either a rule file (.json, .yaml, .yml) that matches targets by
name, container or property and sets, merges or removes properties (values
may come from environment variables or files, for secrets), or a Nix
augmentation model (.nix), a function {infrastructure, lib}: ... evaluated
with nix-instantiate and a small built-in lib. See docs/augment.md.

Unlike the original, which printed the path of a lazily evaluated Nix file,
the augmentation is evaluated now: errors show up here, with exit status 1.
The output may contain secrets: write it to a protected file (-o creates it
with mode 0600, atomically) rather than a log.

Options:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, augment.Options{})) }

func run(args []string, stdout, stderr io.Writer, opts augment.Options) int {
	fs := pflag.NewFlagSet("dydisnix-augment-infra", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	infra := fs.StringP("infrastructure", "i", "", "infrastructure model (.json, .yaml or .nix)")
	aug := fs.StringP("augment", "a", "", "augmentation: rule file (.json/.yaml) or Nix model (.nix)")
	format := fs.String("format", "json", "output format: json or nix")
	outFile := fs.StringP("output", "o", "", "write the result here (atomically, mode 0600) instead of stdout")
	explain := fs.Bool("explain", false, "print to stderr which attributes of which targets were added (+), changed (~) or removed (-); never values")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, usage)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "dydisnix-augment-infra: %v\nTry 'dydisnix-augment-infra --help' for more information.\n", err)
		return 2
	}
	var explainTo io.Writer
	if *explain {
		explainTo = stderr
	}
	err := apply(fs, *infra, *aug, *format, *outFile, stdout, explainTo, opts)
	return cli.Exit("dydisnix-augment-infra", err, stderr)
}

func apply(fs *pflag.FlagSet, infra, aug, format, outFile string, stdout, explain io.Writer, opts augment.Options) error {
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	case infra == "":
		return cli.Usagef("An infrastructure expression must be specified!")
	case aug == "":
		return cli.Usagef("An augment file must be specified!")
	case format != "json" && format != "nix":
		return cli.Usagef("--format must be json or nix, got %q", format)
	}
	inf, err := model.LoadInfrastructure(infra)
	if err != nil {
		return err
	}
	a, err := augment.Load(aug, opts)
	if err != nil {
		return err
	}
	out, err := a.Apply(context.Background(), inf)
	if err != nil {
		return err
	}
	if explain != nil {
		for _, c := range augment.Diff(inf, out) {
			fmt.Fprintln(explain, c)
		}
	}
	data, err := model.Encode(out, model.Format(format))
	if err != nil {
		return err
	}
	if outFile != "" {
		return model.WriteFileAtomic(outFile, data, 0o600)
	}
	_, err = stdout.Write(data)
	return err
}
