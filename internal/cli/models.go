package cli

import (
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Model file flags, for Models.AddFlags.
const (
	ServicesFlag       = 1 << iota // -s, --services FILE
	InfrastructureFlag             // -i, --infrastructure FILE
	DistributionFlag               // -d, --distribution FILE
	ExtraParamsFlag                // --extra-params EXPR
	XMLFlag                        // --xml
)

// Models holds the model files a command reads: the same flags, with the
// same help, in every command. Model files are .json, .yaml/.yml or .nix.
type Models struct {
	// Services, Infrastructure and Distribution are model files ("" when
	// not given).
	Services, Infrastructure, Distribution string
	// ExtraParams is a Nix attribute set of extra arguments for .nix models.
	ExtraParams string
	// XML reads every model file as the original's XML (--xml).
	XML bool
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
	if which&XMLFlag != 0 {
		fs.BoolVar(&m.XML, "xml", false, "the model files are the original's XML (what dydisnix-xml wrote), whatever their names")
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

	formats []string
	format  *pflag.Flag
}

// AddFlags defines -o/--output, saying what is written, and -f/--format,
// which accepts formats (the first is the default). After parsing, Check
// picks the format a FILE's name asks for.
func (o *Output) AddFlags(fs *pflag.FlagSet, what string, formats ...string) {
	fs.StringVarP(&o.File, "output", "o", "", "write "+what+" to `FILE` (atomically) instead of stdout; a name ending in "+extList(formats)+" selects that format")
	ChoiceVarP(fs, &o.Format, "format", "f", formats[0], "`FMT` output format: "+orList(formats), formats...)
	o.formats, o.format = formats, fs.Lookup("format")
}

// extensions are the output file name endings that select a format.
var extensions = map[string]string{".nix": "nix", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".xml": "xml",
	".dot": "dot", ".svg": "svg"}

func extList(formats []string) string {
	var exts []string
	for _, e := range []string{".nix", ".json", ".yaml", ".xml", ".dot", ".svg"} {
		if slices.Contains(formats, extensions[e]) {
			exts = append(exts, e)
		}
	}
	return orList(exts)
}

// Check, called once the flags are parsed, makes the output file's name
// decide the format, as the original tools did: a FILE ending in .nix is
// written as Nix (.json as JSON, .yaml/.yml as YAML, .xml as XML, .dot and
// .svg as those pictures) when the
// command writes that format. A -f/--format that contradicts the name is a
// usage error, and so is a .nix name where the command writes no Nix (a
// Disnix user's script must not find JSON in a .nix file); a name with any
// other ending keeps -f/--format.
func (o *Output) Check() error {
	want, ok := extensions[strings.ToLower(filepath.Ext(o.File))]
	if ok && want == "nix" && !slices.Contains(o.formats, want) {
		return Usagef("-o %s: this command does not write Nix", o.File)
	}
	if !ok || !slices.Contains(o.formats, want) || o.Format == want {
		return nil
	}
	if o.format != nil && o.format.Changed {
		return Usagef("-o %s is written as %s: -f %s contradicts its name", o.File, want, o.Format)
	}
	o.Format = want
	return nil
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
