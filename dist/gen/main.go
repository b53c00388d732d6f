// Command gen writes the man pages and the bash, zsh and fish completions of
// the dydisnix commands from their --help output (`make install` runs it):
//
//	go run ./dist/gen -bin bin -man DIR -bash DIR -zsh DIR -fish DIR dydisnix-agent ...
//
// Each output directory is optional; a missing one is created. The pages
// and completions are derived from the programs themselves, so they list
// exactly the flags the built commands accept.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// outputs are the directories to write into ("" skips that kind).
type outputs struct {
	man, bash, zsh, fish string
}

func run(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory of the built commands")
	var out outputs
	fs.StringVar(&out.man, "man", "", "write NAME.1 man pages into `DIR`")
	fs.StringVar(&out.bash, "bash", "", "write bash completions (NAME) into `DIR`")
	fs.StringVar(&out.zsh, "zsh", "", "write zsh completions (_NAME) into `DIR`")
	fs.StringVar(&out.fish, "fish", "", "write fish completions (NAME.fish) into `DIR`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := fs.Args()
	if len(names) == 0 {
		return fmt.Errorf("no command named (usage: gen [-bin DIR] [-man DIR] ... COMMAND...)")
	}
	for _, name := range names {
		prog := filepath.Join(*bin, name)
		text, err := output(prog, "--help")
		if err != nil {
			return err
		}
		h, err := parseHelp(name, text)
		if err != nil {
			return err
		}
		version, err := output(prog, "--version")
		if err != nil {
			return err
		}
		if err := generate(h, releaseOf(version), related(name, names), out); err != nil {
			return err
		}
	}
	return nil
}

// output runs prog with one argument and returns its standard output.
func output(prog, arg string) (string, error) {
	var stdout, stderr bytes.Buffer
	c := exec.Command(prog, arg)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", prog, arg, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// releaseOf takes the version from a --version line ("NAME VERSION ...").
func releaseOf(versionLine string) string {
	f := strings.Fields(versionLine)
	if len(f) < 2 {
		return "(unknown)"
	}
	return f[1]
}

// related are the commands other than name.
func related(name string, all []string) []string {
	var out []string
	for _, n := range all {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

// generate writes every requested file of one command.
func generate(h *help, version string, see []string, out outputs) error {
	files := []struct {
		dir, name string
		write     func(io.Writer) error
	}{
		{out.man, h.name + ".1", func(w io.Writer) error { return writeMan(w, h, version, see) }},
		{out.bash, h.name, func(w io.Writer) error { return writeBash(w, h) }},
		{out.zsh, "_" + h.name, func(w io.Writer) error { return writeZsh(w, h) }},
		{out.fish, h.name + ".fish", func(w io.Writer) error { return writeFish(w, h) }},
	}
	for _, f := range files {
		if f.dir == "" {
			continue
		}
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			return fmt.Errorf("output directory: %w", err)
		}
		if err := os.WriteFile(filepath.Join(f.dir, f.name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
	}
	return nil
}
