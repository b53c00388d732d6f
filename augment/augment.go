// Package augment adds what discovery must not carry (secrets, site
// settings) to an infrastructure model.
//
// An augmentation is loaded once with Load, which resolves every value that
// comes from the environment or a file, and then applied with
// Augmenter.Apply, which never mutates its input. Two formats exist:
//
//   - a rule file (.json, .yaml, .yml): rules that match targets by name
//     glob, container presence or property value, and set, merge or remove
//     properties, container properties and target attributes (see
//     docs/augment.md);
//   - a Nix augmentation model (.nix): a function
//     {infrastructure, lib}: <new infrastructure>, as in the original
//     dydisnix-augment-infra, evaluated by nix-instantiate with a small
//     embedded lib (the common nixpkgs lib functions; nixpkgs is not needed).
//
// Values read from the environment or from files are treated as secrets:
// error messages name the variable or file, never the value.
package augment

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dydisnix/dydisnix/model"
)

// Augmenter turns an infrastructure model into the augmented one.
type Augmenter interface {
	// Apply returns the augmented infrastructure. It never modifies infra.
	// Cancelling ctx stops an evaluation in progress; the error then wraps
	// ctx.Err().
	Apply(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error)
}

// NixEvaluator evaluates a Nix expression, with stdin as the data the
// expression may read from /dev/stdin, and returns its strict JSON value
// (nix-instantiate --eval --strict --json --expr EXPR).
type NixEvaluator interface {
	EvalJSON(ctx context.Context, expr string, stdin []byte) ([]byte, error)
}

// Options are the environment of Load. Zero fields take the process's own.
type Options struct {
	// LookupEnv resolves {$env: NAME} values; default os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// ReadFile reads the augmentation file and {$file: PATH} values;
	// default os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// Nix evaluates .nix augmentation models; default runs nix-instantiate.
	Nix NixEvaluator
	// ExtraParams is the --extra-params Nix expression: a .nix model gets
	// the attributes of it that it declares as arguments ("" = none).
	ExtraParams string
}

func (o Options) withDefaults() Options {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Nix == nil {
		o.Nix = NixInstantiate{}
	}
	return o
}

// Load reads an augmentation file: a rule file (.json, .yaml, .yml) or a
// Nix augmentation model (.nix). Environment variables and files the rules
// refer to are resolved now, so Apply does no I/O for rule files.
func Load(file string, opts Options) (Augmenter, error) {
	opts = opts.withDefaults()
	format, err := model.FormatOf(file)
	if err != nil {
		return nil, fmt.Errorf("load augmentation: %w", err)
	}
	if format == model.FormatNix {
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, fmt.Errorf("load augmentation %s: %w", file, err)
		}
		if _, err := opts.ReadFile(abs); err != nil {
			return nil, fmt.Errorf("load augmentation: %w", err)
		}
		return &NixAugmenter{File: abs, Eval: opts.Nix, ExtraParams: opts.ExtraParams}, nil
	}
	data, err := opts.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load augmentation: %w", err)
	}
	return ParseRules(data, format, file, opts)
}
