package main

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// help is a command's --help text, split into the parts a man page and the
// shell completions need. The layout is the one internal/cli prints.
type help struct {
	name     string
	usage    []string     // synopsis lines, "Usage: " removed
	prose    []string     // description paragraphs, in order
	options  []option     // the "Options:" list
	commands []subcommand // the "Commands:" list, if any
	exit     string       // the "Exit status: ..." paragraph, prefix removed
}

// option is one flag of the "Options:" list.
type option struct {
	short, long string // without dashes; short may be ""
	arg         string // the value's name ("FILE"); "" for a boolean flag
	desc        string // the description, lines joined
}

// repeatable reports whether the description says the flag may be repeated.
func (o option) repeatable() bool { return strings.Contains(o.desc, "repeatable") }

// subcommand is one entry of the "Commands:" list.
type subcommand struct {
	syntax string // "up [-n N] [--properties FILE]"
	desc   string
}

// names are the words that select the subcommand ("partition NAME | heal
// NAME" selects partition and heal).
func (s subcommand) names() []string {
	var out []string
	for _, alt := range strings.Split(s.syntax, "|") {
		if f := strings.Fields(alt); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// optionHead matches the first line of a flag: "  -s, --services FILE  text"
// or "      --publish  text" (the text may start on the next line).
var optionHead = regexp.MustCompile(`^(?:  -([^-\s]), |      )--([A-Za-z0-9][-A-Za-z0-9]*)(?: ([^\s]+))?(?: {2,}(\S.*))?$`)

// parseHelp splits the --help output of the command name. A line of the
// "Options:" or "Commands:" list it cannot place is an error, so a change of
// layout fails the build instead of dropping flags from the man page.
func parseHelp(name, text string) (*help, error) {
	h := &help{name: name}
	for i, block := range blocks(text) {
		first := block[0]
		switch {
		case strings.HasPrefix(first, "Usage: "):
			for _, l := range block {
				h.usage = append(h.usage, strings.TrimSpace(strings.TrimPrefix(l, "Usage: ")))
			}
		case first == "Options:":
			opts, err := parseOptions(block[1:])
			if err != nil {
				return nil, fmt.Errorf("%s --help, block %d (Options): %w", name, i+1, err)
			}
			h.options = opts
		case first == "Commands:":
			cmds, err := parseCommands(block[1:])
			if err != nil {
				return nil, fmt.Errorf("%s --help, block %d (Commands): %w", name, i+1, err)
			}
			h.commands = cmds
		case strings.HasPrefix(first, "Exit status: "):
			h.exit = strings.TrimPrefix(joinLines(block), "Exit status: ")
		default:
			h.prose = append(h.prose, joinLines(block))
		}
	}
	if len(h.usage) == 0 {
		return nil, fmt.Errorf("%s --help: no \"Usage: \" line", name)
	}
	if len(h.options) == 0 {
		return nil, fmt.Errorf("%s --help: no \"Options:\" list", name)
	}
	return h, nil
}

// blocks splits text at blank lines.
func blocks(text string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.TrimSpace(l) == "" {
			if cur != nil {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, l)
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

func joinLines(lines []string) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strings.TrimSpace(l)
	}
	return strings.Join(parts, " ")
}

// continuation reports whether l continues the description above it: the
// descriptions are indented past the widest flag (at least 10 columns).
func continuation(l string) bool {
	return strings.HasPrefix(l, strings.Repeat(" ", 10)) && strings.TrimSpace(l) != ""
}

func parseOptions(lines []string) ([]option, error) {
	var opts []option
	for n, l := range lines {
		if m := optionHead.FindStringSubmatch(l); m != nil {
			opts = append(opts, option{short: m[1], long: m[2], arg: m[3], desc: m[4]})
			continue
		}
		if continuation(l) && len(opts) > 0 {
			o := &opts[len(opts)-1]
			o.desc = strings.TrimSpace(o.desc + " " + strings.TrimSpace(l))
			continue
		}
		return nil, fmt.Errorf("line %d: %q is neither a flag nor the continuation of one", n+2, l)
	}
	return opts, nil
}

func parseCommands(lines []string) ([]subcommand, error) {
	var cmds []subcommand
	for n, l := range lines {
		if !strings.HasPrefix(l, "  ") {
			return nil, fmt.Errorf("line %d: %q is not an indented command", n+2, l)
		}
		if continuation(l) && len(cmds) > 0 {
			c := &cmds[len(cmds)-1]
			c.desc = strings.TrimSpace(c.desc + " " + strings.TrimSpace(l))
			continue
		}
		syntax, desc, _ := strings.Cut(strings.TrimSpace(l), "  ")
		cmds = append(cmds, subcommand{syntax: syntax, desc: strings.TrimSpace(desc)})
	}
	return cmds, nil
}

// summary is the one-line description of the command for the man page's
// NAME section: the first sentence of its description, lower-cased.
func (h *help) summary() string {
	if len(h.prose) == 0 {
		return h.name
	}
	s := h.prose[0]
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSuffix(s, ".")
	if len(s) > 1 && !unicode.IsUpper(rune(s[1])) { // keep "DNS-SD ..."
		s = strings.ToLower(s[:1]) + s[1:]
	}
	return s
}
