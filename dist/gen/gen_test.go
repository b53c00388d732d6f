package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sampleHelp has the layouts internal/cli prints: two synopsis lines, a
// flag whose description starts on the next line, continuation lines,
// repeatable flags, a command list and an exit status.
const sampleHelp = `Usage: tool -s SERVICES [options]
       tool --list

Does things. More text
on two lines.

Commands:
  up [-n N]                 start N machines
  partition NAME | heal NAME
                            take a link down / up

Options:
  -s, --services FILE       services model (required)
      --very-long-flag-name-here DURATION
                            a description on the next line
                            and one more
      --interface IF        interface (repeatable)
      --state-dir DIR       the state directory
      --dry-run             print only
  -h, --help                show this help and exit

.Leading dot and a back\slash.

Exit status: 0 success,
1 error.
`

func TestParseHelp(t *testing.T) {
	t.Parallel()
	h, err := parseHelp("tool", sampleHelp)
	if err != nil {
		t.Fatal(err)
	}
	wantOpts := []option{
		{short: "s", long: "services", arg: "FILE", desc: "services model (required)"},
		{long: "very-long-flag-name-here", arg: "DURATION", desc: "a description on the next line and one more"},
		{long: "interface", arg: "IF", desc: "interface (repeatable)"},
		{long: "state-dir", arg: "DIR", desc: "the state directory"},
		{long: "dry-run", desc: "print only"},
		{short: "h", long: "help", desc: "show this help and exit"},
	}
	if !reflect.DeepEqual(h.options, wantOpts) {
		t.Errorf("options:\n got %+v\nwant %+v", h.options, wantOpts)
	}
	if want := []string{"tool -s SERVICES [options]", "tool --list"}; !reflect.DeepEqual(h.usage, want) {
		t.Errorf("usage %q, want %q", h.usage, want)
	}
	if want := []string{"Does things. More text on two lines.", `.Leading dot and a back\slash.`}; !reflect.DeepEqual(h.prose, want) {
		t.Errorf("prose %q, want %q", h.prose, want)
	}
	if h.exit != "0 success, 1 error." {
		t.Errorf("exit %q", h.exit)
	}
	if got, want := subcommandNames(h), []string{"heal", "partition", "up"}; !reflect.DeepEqual(got, want) {
		t.Errorf("subcommands %q, want %q", got, want)
	}
	if h.commands[1].desc != "take a link down / up" {
		t.Errorf("continued command description %q", h.commands[1].desc)
	}
	if h.summary() != "does things" {
		t.Errorf("summary %q", h.summary())
	}
}

func TestParseHelpErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
	}{
		{"no usage", "Options:\n  -s, --services FILE  x\n", `no "Usage: " line`},
		{"no options", "Usage: tool\n\nText.\n", `no "Options:" list`},
		{"unknown option line", "Usage: tool\n\nOptions:\n  --broken\n", `line 2: "  --broken" is neither a flag nor the continuation of one`},
		{"continuation first", "Usage: tool\n\nOptions:\n              orphan text\n", `is neither a flag`},
		{"unindented command", "Usage: tool\n\nCommands:\nup  start\n\nOptions:\n  -h, --help  help\n", `"up  start" is not an indented command`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseHelp("tool", tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRoff(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"--state-dir":   `\-\-state\-dir`,
		`a\b`:           `a\eb`,
		".starts a dot": `\&.starts a dot`,
		"'quote":        `\&'quote`,
		"plain":         "plain",
		"h:2379,… → x":  `h:2379,\[u2026] \[u2192] x`,
	} {
		if got := roff(in); got != want {
			t.Errorf("roff(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGenerate writes every kind of file for the sample and checks the
// pieces each shell and man need.
func TestGenerate(t *testing.T) {
	t.Parallel()
	h, err := parseHelp("tool", sampleHelp)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := outputs{man: filepath.Join(dir, "man"), bash: filepath.Join(dir, "bash"), zsh: filepath.Join(dir, "zsh"), fish: filepath.Join(dir, "fish")}
	if err := generate(h, "1.2.3", []string{"other"}, out); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"man/tool.1": {`.TH "TOOL" 1 "" "dydisnix 1.2.3"`, `\fB\-s\fR, \fB\-\-services\fR \fIFILE\fR`,
			`\&.Leading dot and a back\eslash.`, `\fBother\fR(1)`, `.SH "EXIT STATUS"`, `\fBpartition\fR NAME | heal NAME`},
		"bash/tool": {"-s|--services) COMPREPLY=($(compgen -f", "--state-dir) COMPREPLY=($(compgen -d",
			"--interface) COMPREPLY=($(compgen -W \"$(ls /sys/class/net", "compgen -W 'heal partition up'", "complete -o filenames -F _tool tool"},
		"zsh/_tool": {"#compdef tool", `'(-s --services)'{-s,--services}'[services model (required)]:FILE:_files'`,
			`'*--interface[interface (repeatable)]:IF:_net_interfaces'`, `'--dry-run[print only]'`, "'1:command:(heal partition up)'"},
		"fish/tool.fish": {"complete -c tool -s s -l services -r -F -d 'services model (required)'",
			"complete -c tool -l state-dir -x -a '(__fish_complete_directories)'", "-n __fish_use_subcommand -x -a heal"},
	}
	for file, parts := range want {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			if !strings.Contains(string(b), p) {
				t.Errorf("%s lacks %q:\n%s", file, p, b)
			}
		}
	}
}

func TestQuoting(t *testing.T) {
	t.Parallel()
	if got, want := zshQuote(`it's [x] a\b`), `it'\''s \[x\] a\\b`; got != want {
		t.Errorf("zshQuote = %q, want %q", got, want)
	}
	if got, want := fishQuote(`it's a\b`), `'it\'s a\\b'`; got != want {
		t.Errorf("fishQuote = %q, want %q", got, want)
	}
}
