package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"ok", nil, 0, ""},
		{"usage", Usagef("--format %q: expected json or nix", "xml"), 2, "dydisnix-x: --format \"xml\": expected json or nix\nTry 'dydisnix-x --help' for more information.\n"},
		{"wrapped usage", fmt.Errorf("parse: %w", Usagef("bad")), 2, "dydisnix-x: parse: bad\nTry 'dydisnix-x --help' for more information.\n"},
		{"model", errors.New("services.json: 3:4: invalid JSON"), 1, "dydisnix-x: services.json: 3:4: invalid JSON\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if got := Exit("dydisnix-x", tc.err, &b); got != tc.code {
				t.Errorf("exit %d, want %d", got, tc.code)
			}
			if b.String() != tc.out {
				t.Errorf("stderr %q, want %q", b.String(), tc.out)
			}
		})
	}
}

func TestWarn(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	Warn("dydisnix-x", nil, &b)
	Warn("dydisnix-x", errors.Join(errors.New("s.json: a: unknown dependency b"), errors.New("s.json: c: cycle")), &b)
	want := "dydisnix-x: warning: s.json: a: unknown dependency b\ndydisnix-x: warning: s.json: c: cycle\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

// newTestCommand is a command with one flag of each kind Options formats.
func newTestCommand() *Command {
	c := New("dydisnix-x", "-i INFRASTRUCTURE [options]\n--list", "Does x.")
	c.Flags.StringP("infrastructure", "i", "", "`FILE` infrastructure model (required)")
	c.Flags.String("target-property", "", "property naming a target's `NAME`")
	var format string
	ChoiceVarP(c.Flags, &format, "format", "f", "json", "output `FMT`: json or nix", "json", "nix")
	c.Flags.Int("keep", 3, "generations kept")
	c.Flags.Bool("dry-run", false, "plan only")
	c.Flags.String("coordinator-profile-path", "", "`DIR` of the coordinator profiles; a long\ndescription that wraps and wraps and wraps around and around")
	c.Flags.String("hidden", "", "not shown")
	c.Flags.MarkHidden("hidden")
	var st StateDir
	st.AddFlags(c.Flags)
	var lg Log
	lg.AddFlags(c.Flags)
	return c
}

func TestHelpLayout(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	newTestCommand().Help(&b)
	want := `Usage: dydisnix-x -i INFRASTRUCTURE [options]
       dydisnix-x --list

Does x.

Options:
  -i, --infrastructure FILE   infrastructure model (required)
      --target-property NAME  property naming a target's NAME
  -f, --format FMT            output FMT: json or nix (default "json")
      --keep INT              generations kept (default 3)
      --dry-run               plan only
      --coordinator-profile-path DIR
                              of the coordinator profiles; a long
                              description that wraps and wraps and wraps around
                              and around
      --state-dir DIR         coordinator state directory (default
                              $DYDISNIX_STATE_DIR, else ~/.dydisnix)
      --log-format FORMAT     log format: console or json (default "console")
      --log-level LEVEL       lowest level logged: debug, info, warn or error
                              (default info)
  -h, --help                  show this help and exit
      --version               print the version and exit

Exit status: 0 success, 1 model or planning error, 2 usage error.
`
	if b.String() != want {
		t.Errorf("help:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestParse covers what every command shares: --help and --version exit 0
// on stdout; an unknown flag, a bad value or an extra argument prints one
// line and a pointer to --help, and exits 2.
func TestParse(t *testing.T) {
	t.Parallel()
	try := "Try 'dydisnix-x --help' for more information.\n"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		done   bool
		stdout string // prefix
		stderr string // exact
	}{
		{"ok", []string{"-i", "x"}, 0, false, "", ""},
		{"help", []string{"-i", "x", "--help"}, 0, true, "Usage: dydisnix-x -i INFRASTRUCTURE", ""},
		{"short help", []string{"-h"}, 0, true, "Usage: ", ""},
		{"version", []string{"--version"}, 0, true, "dydisnix-x ", ""},
		{"unknown flag", []string{"--foo"}, 2, true, "", "dydisnix-x: unknown flag: --foo\n" + try},
		{"unknown short", []string{"-z"}, 2, true, "", "dydisnix-x: unknown shorthand flag: 'z' in -z\n" + try},
		{"missing value", []string{"-i"}, 2, true, "", "dydisnix-x: flag needs an argument: 'i' in -i\n" + try},
		{"bad choice", []string{"-f", "xml"}, 2, true, "", "dydisnix-x: invalid argument \"xml\" for \"-f, --format\" flag: expected json or nix\n" + try},
		{"bad level", []string{"--log-level", "loud"}, 2, true, "", "dydisnix-x: invalid argument \"loud\" for \"--log-level\" flag: expected debug, info, warn or error\n" + try},
		{"bad int", []string{"--keep", "many"}, 2, true, "", "dydisnix-x: invalid argument \"many\" for \"--keep\" flag: strconv.ParseInt: parsing \"many\": invalid syntax\n" + try},
		{"argument", []string{"-i", "x", "extra"}, 2, true, "", "dydisnix-x: unexpected argument \"extra\"\n" + try},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code, done := newTestCommand().Parse(tc.args, &out, &errb)
			if code != tc.code || done != tc.done {
				t.Errorf("Parse = %d, %v; want %d, %v", code, done, tc.code, tc.done)
			}
			if !strings.HasPrefix(out.String(), tc.stdout) || (tc.stdout == "" && out.Len() > 0) {
				t.Errorf("stdout %q, want it to start with %q", out.String(), tc.stdout)
			}
			if errb.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", errb.String(), tc.stderr)
			}
		})
	}
}

func TestMaxArgs(t *testing.T) {
	t.Parallel()
	c := New("dydisnix-x", "[FILE]", "")
	c.MaxArgs = 1
	var out, errb bytes.Buffer
	if code, done := c.Parse([]string{"a"}, &out, &errb); code != 0 || done || c.Flags.Arg(0) != "a" {
		t.Fatalf("one argument: %d %v", code, done)
	}
	c = New("dydisnix-x", "[FILE]", "")
	c.MaxArgs = 1
	if code, done := c.Parse([]string{"a", "b"}, &out, &errb); code != 2 || !done || !strings.Contains(errb.String(), `unexpected argument "b"`) {
		t.Fatalf("two arguments: %d %v %q", code, done, errb.String())
	}
}
