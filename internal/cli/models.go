package cli

import (
	"io"

	"github.com/spf13/pflag"
)

// Model file flags, for Models.AddFlags.
const (
	ServicesFlag       = 1 << iota // -s, --services FILE
	InfrastructureFlag             // -i, --infrastructure FILE
	DistributionFlag               // -d, --distribution FILE
	ExtraParamsFlag                // --extra-params EXPR
)

// Models holds the model files a command reads: the same flags, with the
// same help, in every command. Model files are .json, .yaml/.yml or .nix.
type Models struct {
	// Services, Infrastructure and Distribution are model files ("" when
	// not given).
	Services, Infrastructure, Distribution string
	// ExtraParams is a Nix attribute set of extra arguments for .nix models.
	ExtraParams string
}

// AddFlags defines the flags of which (ServicesFlag|InfrastructureFlag...)
// in fs, in that order.
func (m *Models) AddFlags(fs *pflag.FlagSet, which int) {
	if which&ServicesFlag != 0 {
		fs.StringVarP(&m.Services, "services", "s", "", "`FILE` services model")
	}
	if which&InfrastructureFlag != 0 {
		fs.StringVarP(&m.Infrastructure, "infrastructure", "i", "", "`FILE` infrastructure model")
	}
	if which&DistributionFlag != 0 {
		fs.StringVarP(&m.Distribution, "distribution", "d", "", "`FILE` distribution model")
	}
	if which&ExtraParamsFlag != 0 {
		fs.StringVar(&m.ExtraParams, "extra-params", "", "`EXPR` Nix attribute set of extra arguments for the .nix models (services, infrastructure, distribution, QoS model, filter catalog): each gets those it declares, e.g. '{ x = 1; }'")
	}
}

// Require is a usage error for the first model of which (in the order
// services, infrastructure, distribution) that was not given, in the
// original tools' words.
func (m *Models) Require(which int) error {
	switch {
	case which&ServicesFlag != 0 && m.Services == "":
		return Usagef("A services expression must be specified! (-s)")
	case which&InfrastructureFlag != 0 && m.Infrastructure == "":
		return Usagef("An infrastructure expression must be specified! (-i)")
	case which&DistributionFlag != 0 && m.Distribution == "":
		return Usagef("A distribution expression must be specified! (-d)")
	}
	return nil
}

// Output is where a command that prints one document writes it:
// -o/--output FILE (stdout when not given) and -f/--format FMT.
type Output struct {
	// File is the output file, "" for stdout.
	File string
	// Format is one of the formats given to AddFlags.
	Format string
}

// AddFlags defines -o/--output, saying what is written, and -f/--format,
// which accepts formats (the first is the default).
func (o *Output) AddFlags(fs *pflag.FlagSet, what string, formats ...string) {
	fs.StringVarP(&o.File, "output", "o", "", "write "+what+" to `FILE` (atomically) instead of stdout")
	ChoiceVarP(fs, &o.Format, "format", "f", formats[0], "`FMT` output format: "+orList(formats), formats...)
}

// Write writes data to stdout, or with writeFile (an atomic writer, for
// example) to the output file.
func (o *Output) Write(data []byte, stdout io.Writer, writeFile func(file string, data []byte) error) error {
	if o.File != "" {
		return writeFile(o.File, data)
	}
	_, err := stdout.Write(data)
	return err
}
