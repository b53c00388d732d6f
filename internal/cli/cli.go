// Package cli is what the thin main packages of the dydisnix commands
// share: one way to define and parse flags, one help layout, --help and
// --version everywhere, the shared flags (--state-dir, --agent-token-file,
// --agent-ca-file, --log-format, --log-level) defined once, and one mapping
// of errors to exit statuses: 0 success, 1 model, planning or runtime error,
// 2 usage error, and the model flags' loaders (--xml). It depends on the
// standard library, spf13/pflag, zap and the model package.
//
// A main package builds a Command, adds its flags (a back-quoted word in a
// flag's usage names its value in the help), adds the shared groups it
// needs, parses, and hands the error of its work to Exit:
//
//	func run(args []string, stdout, stderr io.Writer) int {
//		c := cli.New("dydisnix-x", "-i INFRASTRUCTURE [options]", "Does x.")
//		infra := c.Flags.StringP("infrastructure", "i", "", "`FILE` infrastructure model (required)")
//		var state cli.StateDir
//		state.AddFlags(c.Flags)
//		if code, done := c.Parse(args, stdout, stderr); done {
//			return code // --help, --version, or a usage error already reported
//		}
//		if *infra == "" {
//			return c.Exit(cli.Usagef("-i/--infrastructure is required"), stderr)
//		}
//		return c.Exit(doX(*infra, state.Path()), stderr)
//	}
//
// An unknown flag, a bad flag value, an unexpected argument or a usage
// error returned to Exit prints one line, "NAME: what is wrong", and
// "Try 'NAME --help' for more information.", never the whole help.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// ExitStatus is the help's closing line for most commands.
const ExitStatus = "Exit status: 0 success, 1 model or planning error, 2 usage error."

// Command is one command line tool: its name, its help and its flags.
type Command struct {
	// Name is the program's name, e.g. "dydisnix-gendist": the prefix of
	// every message and the first word of the usage line.
	Name string
	// Synopsis follows the name on the usage line; each further line of it
	// is another usage line.
	Synopsis string
	// Doc is printed between the usage lines and the options.
	Doc string
	// Footer, if any, is printed after the options.
	Footer string
	// ExitStatus closes the help; New sets it to the package's ExitStatus.
	ExitStatus string
	// MaxArgs is how many positional arguments Parse accepts (default 0).
	MaxArgs int
	// Flags is the command's flag set; -h/--help and --version are in it.
	Flags *pflag.FlagSet

	help, version bool
}

// New returns a command with -h/--help and --version defined. Flags keep
// the order they are defined in, in the help as well.
func New(name, synopsis, doc string) *Command {
	c := &Command{Name: name, Synopsis: synopsis, Doc: doc, ExitStatus: ExitStatus}
	c.Flags = pflag.NewFlagSet(name, pflag.ContinueOnError)
	c.Flags.SortFlags = false
	c.Flags.SetOutput(io.Discard)
	c.Flags.Usage = func() {}
	c.Flags.BoolVarP(&c.help, "help", "h", false, "show this help and exit")
	c.Flags.BoolVar(&c.version, "version", false, "print the version and exit")
	return c
}

// Parse parses args. It returns done when the command has nothing left to
// do: after printing the help or the version to stdout (exit 0), or after
// reporting a usage error on stderr (exit 2: an unknown flag, a bad value,
// more than MaxArgs positional arguments).
func (c *Command) Parse(args []string, stdout, stderr io.Writer) (exit int, done bool) {
	err := c.Flags.Parse(args)
	switch {
	case err != nil:
		return c.Exit(usageError{err.Error()}, stderr), true
	case c.help:
		c.Help(stdout)
		return 0, true
	case c.version:
		fmt.Fprintln(stdout, Version(c.Name))
		return 0, true
	case c.Flags.NArg() > c.MaxArgs:
		return c.Exit(Usagef("unexpected argument %q", c.Flags.Arg(c.MaxArgs)), stderr), true
	}
	return 0, false
}

// Help writes the help: usage lines, the description, the options with
// their value names and defaults, the footer and the exit statuses.
func (c *Command) Help(w io.Writer) {
	var b strings.Builder
	for i, line := range strings.Split(c.Synopsis, "\n") {
		if i == 0 {
			fmt.Fprintf(&b, "Usage: %s %s\n", c.Name, strings.TrimSpace(line))
		} else {
			fmt.Fprintf(&b, "       %s %s\n", c.Name, strings.TrimSpace(line))
		}
	}
	for _, part := range []string{c.Doc, "Options:\n" + Options(c.Flags), c.Footer, c.ExitStatus} {
		if part = strings.TrimRight(part, "\n"); part != "" {
			b.WriteString("\n" + part + "\n")
		}
	}
	io.WriteString(w, b.String())
}

// Exit reports err on stderr and returns the command's exit status (see
// the package's Exit).
func (c *Command) Exit(err error, stderr io.Writer) int { return Exit(c.Name, err, stderr) }

// ErrUsage marks an error in how a command was called: it exits with
// status 2. Test for it with errors.Is.
var ErrUsage = errors.New("usage error")

// usageError is a usage error whose text is only its message.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns a usage error (errors.Is(err, ErrUsage) holds).
func Usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// Exit reports err on stderr, prefixed by the command's name, and returns
// the contract's exit status: 0 without an error, 2 for a usage error
// (one line and a pointer to --help), 1 for any other error (a model,
// planning or runtime error).
func Exit(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\nTry '%s --help' for more information.\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// Warn reports the problems in err (one per line, as errors.Join writes
// them) as warnings on stderr; a nil err prints nothing. The planning
// commands warn about an invalid services model (an unknown dependency, a
// dependsOn cycle) where the original tools said nothing, and still plan.
func Warn(name string, err error, stderr io.Writer) {
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintf(stderr, "%s: warning: %s\n", name, line)
		}
	}
}
