// Package cmd_test checks, on the built programs, what every dydisnix
// command shares (internal/cli): --version, --help, the one-line report of
// a usage error, and one meaning per short flag across commands.
package cmd_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// commands are every program of cmd/.
var commands = []string{
	"dydisnix-agent", "dydisnix-augment-infra", "dydisnix-ctl", "dydisnix-document-services",
	"dydisnix-env", "dydisnix-gendist", "dydisnix-generate-services-docs",
	"dydisnix-geninfra-avahi", "dydisnix-geninfra-mdns", "dydisnix-id-assign",
	"dydisnix-port-assign", "dydisnix-publishinfra", "dydisnix-reconstruct",
	"dydisnix-self-adapt", "dydisnix-snapshot", "dydisnix-testbed", "dydisnix-tls", "dydisnix-visualize",
	"dydisnix-visualize-infra", "dydisnix-visualize-services",
}

// binDir holds the programs, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dydisnix-cmd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", dir + "/"}
	for _, c := range commands {
		args = append(args, "./"+c)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bin is the path of a built program.
func bin(name string) string { return filepath.Join(binDir, name) }

// runProgram runs a program and returns its exit status and output.
func runProgram(t *testing.T, prog string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := exec.Command(prog, args...)
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

func TestConventions(t *testing.T) {
	for _, name := range commands {
		prog := bin(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			try := "Try '" + name + " --help' for more information.\n"
			for _, c := range []struct {
				args   []string
				code   int
				stdout []string // the first is a prefix
				stderr string   // exact
			}{
				{[]string{"--version"}, 0, []string{name + " "}, ""},
				{[]string{"--help"}, 0, []string{"Usage: " + name + " ", "\nOptions:\n", "\n  -h, --help ", "\n      --version ", "\nExit status: 0 "}, ""},
				{[]string{"-h"}, 0, []string{"Usage: " + name + " "}, ""},
				{[]string{"--no-such-flag"}, 2, []string{""}, name + ": unknown flag: --no-such-flag\n" + try},
				{[]string{"-Z"}, 2, []string{""}, name + ": unknown shorthand flag: 'Z' in -Z\n" + try},
			} {
				code, out, errs := runProgram(t, prog, c.args...)
				ok := code == c.code && strings.HasPrefix(out, c.stdout[0]) && errs == c.stderr && (c.code == 0 || out == "")
				for _, want := range c.stdout[1:] {
					ok = ok && strings.Contains(out, want)
				}
				if !ok {
					t.Errorf("%s %v: exit %d (want %d)\nstdout: %q (want %q)\nstderr: %q (want %q)", name, c.args, code, c.code, out, c.stdout, errs, c.stderr)
				}
				if c.args[0] == "--version" && strings.Count(out, "\n") != 1 {
					t.Errorf("--version prints %q, want one line", out)
				}
			}
		})
	}
}

// shortFlags are the meanings of the short flags: the same in every
// command that has them.
var shortFlags = map[string]string{
	"s": "services", "i": "infrastructure", "d": "distribution", "q": "qos", "p": "profile",
	"a": "augment", "o": "output", "f": "format", "m": "max-concurrent-transfers", "h": "help",
	"F": "filters", "t": "timeout", "w": "watch", "n": "machines", "P": "packages",
}

// shortExceptions keep the meaning the original tool gives a short flag.
var shortExceptions = map[string]string{"dydisnix-port-assign -p": "ports"}

var flagLine = regexp.MustCompile(`(?m)^  -(\w), --([\w-]+)`)

func TestShortFlags(t *testing.T) {
	for _, name := range commands {
		prog := bin(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, _ := runProgram(t, prog, "--help")
			if code != 0 {
				t.Fatalf("--help: exit %d", code)
			}
			for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
				short, long := m[1], m[2]
				want, ok := shortExceptions[name+" -"+short]
				if !ok {
					want = shortFlags[short]
				}
				if want == "" {
					t.Errorf("-%s, --%s: a short flag without an agreed meaning (add it to shortFlags if it is one)", short, long)
				} else if long != want {
					t.Errorf("-%s is --%s here, but --%s everywhere else", short, long, want)
				}
			}
		})
	}
}

// TestEveryCommandListed: the tables above cover every program of cmd/.
func TestEveryCommandListed(t *testing.T) {
	dirs, err := filepath.Glob("dydisnix-*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no commands in cmd/ (%v)", err)
	}
	for _, d := range dirs {
		if !slices.Contains(commands, d) {
			t.Errorf("%s is not in commands", d)
		}
	}
}

// originalFlags are the flags of the original Dynamic Disnix tools
// (dydisnix.md §3) that keep their name and meaning here, so that scripts
// keep working (issue 9 item 6). gendist's -F/--filters and the
// documentation tools are in the rooms that implement them.
var originalFlags = map[string][]string{
	"dydisnix-gendist": {"-s, --services", "-i, --infrastructure", "-q, --qos", "--filter-buildable", "--output-xml", "--stdout",
		"-p, --profile", "--coordinator-profile-path", "--target-property", "--interface", "--extra-params", "--no-out-link", "--show-trace"},
	"dydisnix-augment-infra": {"-i, --infrastructure", "-a, --augment"},
	"dydisnix-env": {"-s, --services", "-q, --qos", "-i, --infrastructure", "-P, --packages", "-a, --augment", "--id-resources", "--ids",
		"--ids-service-property", "-F, --filters", "-p, --profile", "--coordinator-profile-path", "-m, --max-concurrent-transfers",
		"--no-migration", "--delete-state", "--geninfra", "--depth-first", "--keep", "--show-trace", "--extra-params", "--interface",
		"--target-property", "--ports"},
	"dydisnix-self-adapt": {"-s, --services", "-q, --qos", "-a, --augment", "--id-resources", "--ids", "--ids-service-property",
		"-F, --filters", "-p, --profile", "--coordinator-profile-path", "-m, --max-concurrent-transfers", "--no-migration",
		"--delete-state", "--geninfra", "--depth-first", "--keep", "--show-trace", "--extra-params", "--interface",
		"--target-property", "--interval", "--snapshot", "--reconstruct", "--ports"},
	"dydisnix-id-assign": {"-s, --services", "-i, --infrastructure", "-d, --distribution", "--id-resources", "--ids",
		"--service-property", "--output-file", "--extra-params", "--xml", "--output-xml"},
	"dydisnix-port-assign":    {"-s, --services", "-i, --infrastructure", "-d, --distribution", "-p, --ports", "--service-property", "--xml", "--output-xml"},
	"dydisnix-geninfra-avahi": {},
}

func TestOriginalFlags(t *testing.T) {
	for name, flags := range originalFlags {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, _ := runProgram(t, bin(name), "--help")
			if code != 0 {
				t.Fatalf("--help: exit %d", code)
			}
			for _, f := range flags {
				if !regexp.MustCompile(`(?m)^ +` + regexp.QuoteMeta(f) + `( |$)`).MatchString(out) {
					t.Errorf("the original's %s is missing", f)
				}
			}
		})
	}
}

// TestStepBoundsChecked: a negative bound on the steps of a transition is
// a usage error (exit 2) naming the flag, in both commands that deploy.
func TestStepBoundsChecked(t *testing.T) {
	for _, name := range []string{"dydisnix-env", "dydisnix-self-adapt"} {
		for _, flag := range []string{"-m", "--max-uploads", "--max-per-target"} {
			t.Run(name+flag, func(t *testing.T) {
				t.Parallel()
				value := "-1"
				if flag == "--max-per-target" {
					value = "0"
				}
				code, _, stderr := runProgram(t, bin(name), "-s", "services.nix", "-q", "qos.nix", "-i", "infrastructure.nix", flag, value)
				if code != 2 || !strings.Contains(stderr, flag+": expected") {
					t.Errorf("%s %s %s: exit %d, %q; want exit 2, naming %s", name, flag, value, code, stderr, flag)
				}
			})
		}
	}
}
