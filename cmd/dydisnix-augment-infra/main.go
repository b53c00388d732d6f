// Command dydisnix-augment-infra prints an infrastructure model augmented
// with what discovery must not carry (secrets, site settings).
//
//	dydisnix-augment-infra -i INFRA -a AUGMENT [--format json|nix] [-o F]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
)

const doc = `Applies an augmentation to an infrastructure model and prints the result.
AUGMENT is either a rule file (.json, .yaml, .yml) that matches targets by
name, container or property and sets, merges or removes properties (values
may come from environment variables or files, for secrets), or a Nix
augmentation model (.nix), a function {infrastructure, lib}: ... evaluated
with nix-instantiate and a small built-in lib. See docs/augment.md.

Unlike the original, which printed the path of a lazily evaluated Nix file,
the augmentation is evaluated now: errors show up here, with exit status 1.
The output may contain secrets: write it to a protected file (-o creates it
with mode 0600, atomically) rather than a log.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, augment.Options{})) }

func run(args []string, stdout, stderr io.Writer, opts augment.Options) int {
	c := cli.New("dydisnix-augment-infra", "-i INFRASTRUCTURE -a AUGMENT [options]", doc)
	fs := c.Flags
	var m cli.Models
	m.AddFlags(fs, cli.InfrastructureFlag)
	aug := fs.StringP("augment", "a", "", "`FILE` augmentation: rule file (.json/.yaml) or Nix model (.nix) (required)")
	var out cli.Output
	out.AddFlags(fs, "the result (mode 0600)", "json", "nix")
	explain := fs.Bool("explain", false, "print to stderr which attributes of which targets were added (+), changed (~) or removed (-); never values")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := out.Check(); err != nil {
		return c.Exit(err, stderr)
	}
	var explainTo io.Writer
	if *explain {
		explainTo = stderr
	}
	if err := m.Require(cli.InfrastructureFlag); err != nil {
		return c.Exit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c.Exit(apply(ctx, m.Infrastructure, *aug, out, stdout, explainTo, opts), stderr)
}

func apply(ctx context.Context, infra, aug string, output cli.Output, stdout, explain io.Writer, opts augment.Options) error {
	if aug == "" {
		return cli.Usagef("An augment file must be specified! (-a)")
	}
	inf, err := model.LoadInfrastructure(infra)
	if err != nil {
		return err
	}
	a, err := augment.Load(aug, opts)
	if err != nil {
		return err
	}
	out, err := a.Apply(ctx, inf)
	if err != nil {
		return err
	}
	if explain != nil {
		for _, c := range augment.Diff(inf, out) {
			fmt.Fprintln(explain, c)
		}
	}
	data, err := model.Encode(out, model.Format(output.Format))
	if err != nil {
		return err
	}
	return output.Write(data, stdout, func(file string, data []byte) error { return model.WriteFileAtomic(file, data, 0o600) })
}
