package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// valueKind says what a flag's value is, from the name its help gives it.
type valueKind int

const (
	valueNone      valueKind = iota // a boolean flag
	valueFile                       // FILE and the model names: complete files
	valueDir                        // DIR: complete directories
	valueInterface                  // IF: complete network interfaces
	valueOther                      // anything else: nothing to complete
)

// fileArgs are value names that name files although they do not say FILE.
var fileArgs = map[string]bool{
	"FILE": true, "SERVICES": true, "INFRASTRUCTURE": true, "DISTRIBUTION": true,
	"AUGMENT": true, "PORTS": true, "IDS": true, "RESOURCES": true, "POLICY": true,
}

func kindOf(o option) valueKind {
	switch {
	case o.arg == "":
		return valueNone
	case o.arg == "DIR":
		return valueDir
	case o.arg == "IF":
		return valueInterface
	case fileArgs[o.arg]:
		return valueFile
	}
	return valueOther
}

// flagWords are the words of o as typed: "-s" and "--services".
func flagWords(o option) []string {
	if o.short != "" {
		return []string{"-" + o.short, "--" + o.long}
	}
	return []string{"--" + o.long}
}

// funcName is the shell function name of a command's completion.
func funcName(name string) string {
	return "_" + strings.NewReplacer("-", "_", ".", "_").Replace(name)
}

// writeBash writes the bash-completion file of h (installed as
// share/bash-completion/completions/<name>, loaded on demand).
func writeBash(w io.Writer, h *help) error {
	byKind := map[valueKind][]string{}
	var all []string
	for _, o := range h.options {
		words := flagWords(o)
		all = append(all, words...)
		byKind[kindOf(o)] = append(byKind[kindOf(o)], words...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s, generated from its --help.\n", h.name)
	fmt.Fprintf(&b, "%s() {\n", funcName(h.name))
	b.WriteString("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("    COMPREPLY=()\n    case $prev in\n")
	cases := []struct {
		kind valueKind
		do   string
	}{
		{valueFile, `COMPREPLY=($(compgen -f -- "$cur"))`},
		{valueDir, `COMPREPLY=($(compgen -d -- "$cur"))`},
		{valueInterface, `COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))`},
		{valueOther, `:`},
	}
	for _, c := range cases {
		if words := byKind[c.kind]; len(words) > 0 {
			fmt.Fprintf(&b, "        %s) %s; return ;;\n", strings.Join(words, "|"), c.do)
		}
	}
	b.WriteString("    esac\n")
	fmt.Fprintf(&b, "    if [[ $cur == -* ]]; then\n        COMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n        return\n    fi\n",
		strings.Join(all, " "))
	if len(h.commands) > 0 {
		fmt.Fprintf(&b, "    if [[ $COMP_CWORD -eq 1 ]]; then\n        COMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n        return\n    fi\n",
			strings.Join(subcommandNames(h), " "))
	}
	b.WriteString("    COMPREPLY=($(compgen -f -- \"$cur\"))\n}\n")
	fmt.Fprintf(&b, "complete -o filenames -F %s %s\n", funcName(h.name), h.name)
	_, err := io.WriteString(w, b.String())
	return err
}

func subcommandNames(h *help) []string {
	var names []string
	for _, c := range h.commands {
		names = append(names, c.names()...)
	}
	sort.Strings(names)
	return names
}

// zshQuote quotes s for a zsh single-quoted word inside an _arguments
// explanation ("[...]").
func zshQuote(s string) string {
	return strings.NewReplacer(`'`, `'\''`, `[`, `\[`, `]`, `\]`, `\`, `\\`).Replace(s)
}

// writeZsh writes the zsh completion function of h (installed as
// share/zsh/site-functions/_<name>).
func writeZsh(w io.Writer, h *help) error {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s, generated from its --help.\n", h.name, h.name)
	b.WriteString("local -a args\nargs=(\n")
	for _, o := range h.options {
		var head string
		switch {
		case o.short != "" && o.repeatable():
			head = fmt.Sprintf("'*'{-%s,--%s}'", o.short, o.long)
		case o.short != "":
			head = fmt.Sprintf("'(-%s --%s)'{-%s,--%s}'", o.short, o.long, o.short, o.long)
		case o.repeatable():
			head = "'*--" + o.long
		default:
			head = "'--" + o.long
		}
		action := ""
		switch kindOf(o) {
		case valueFile:
			action = ":" + o.arg + ":_files"
		case valueDir:
			action = ":" + o.arg + ":_files -/"
		case valueInterface:
			action = ":" + o.arg + ":_net_interfaces"
		case valueOther:
			action = ":" + o.arg + ": "
		}
		fmt.Fprintf(&b, "  %s[%s]%s'\n", head, zshQuote(o.desc), action)
	}
	if len(h.commands) > 0 {
		fmt.Fprintf(&b, "  '1:command:(%s)'\n", strings.Join(subcommandNames(h), " "))
	} else {
		b.WriteString("  '*:file:_files'\n")
	}
	b.WriteString(")\n_arguments -s -S $args\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// fishQuote quotes s as a fish single-quoted string.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// writeFish writes the fish completions of h (installed as
// share/fish/vendor_completions.d/<name>.fish).
func writeFish(w io.Writer, h *help) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completions for %s, generated from its --help.\n", h.name)
	for _, c := range h.commands {
		for _, n := range c.names() {
			fmt.Fprintf(&b, "complete -c %s -n __fish_use_subcommand -x -a %s -d %s\n", h.name, n, fishQuote(c.desc))
		}
	}
	for _, o := range h.options {
		line := "complete -c " + h.name
		if o.short != "" {
			line += " -s " + o.short
		}
		line += " -l " + o.long
		switch kindOf(o) {
		case valueFile:
			line += " -r -F"
		case valueDir:
			line += " -x -a '(__fish_complete_directories)'"
		case valueInterface:
			line += " -x -a '(__fish_print_interfaces)'"
		case valueOther:
			line += " -x"
		}
		b.WriteString(line + " -d " + fishQuote(o.desc) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
