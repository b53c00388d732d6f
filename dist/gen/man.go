package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
)

// roff escapes text for a man page: backslashes and minus signs (so that
// flags copied from the page are ASCII dashes), and a control character at
// the start of a line.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
		var b strings.Builder
		for _, r := range s {
			if r > unicode.MaxASCII {
				fmt.Fprintf(&b, `\[u%04X]`, r) // groff's named Unicode character
			} else {
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// writeMan writes the section 1 man page of h. version names the release in
// the page's footer; related lists the other commands for SEE ALSO.
func writeMan(w io.Writer, h *help, version string, related []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %q 1 \"\" %q \"dydisnix manual\"\n", strings.ToUpper(h.name), "dydisnix "+version)
	b.WriteString(".nh\n.ad l\n") // no hyphenation of flags, ragged right
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roff(h.name), roff(h.summary()))
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	for _, u := range h.usage {
		rest, ok := strings.CutPrefix(u, h.name)
		if !ok {
			b.WriteString(roff(u) + "\n")
			continue
		}
		fmt.Fprintf(&b, "\\fB%s\\fR%s\n", roff(h.name), roff(rest))
	}
	b.WriteString(".fi\n")
	if len(h.prose) > 0 {
		b.WriteString(".SH DESCRIPTION\n")
		for _, p := range h.prose {
			b.WriteString(".PP\n" + roff(p) + "\n")
		}
	}
	if len(h.commands) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range h.commands {
			name, args, _ := strings.Cut(c.syntax, " ")
			fmt.Fprintf(&b, ".TP\n\\fB%s\\fR %s\n%s\n", roff(name), roff(args), roff(c.desc))
		}
	}
	b.WriteString(".SH OPTIONS\n")
	for _, o := range h.options {
		b.WriteString(".TP\n")
		if o.short != "" {
			fmt.Fprintf(&b, "\\fB\\-%s\\fR, ", roff(o.short))
		}
		fmt.Fprintf(&b, "\\fB\\-\\-%s\\fR", roff(o.long))
		if o.arg != "" {
			fmt.Fprintf(&b, " \\fI%s\\fR", roff(o.arg))
		}
		b.WriteString("\n" + roff(o.desc) + "\n")
	}
	if h.exit != "" {
		b.WriteString(".SH \"EXIT STATUS\"\n" + roff(h.exit) + "\n")
	}
	if len(related) > 0 {
		refs := make([]string, len(related))
		for i, r := range related {
			refs[i] = fmt.Sprintf("\\fB%s\\fR(1)", roff(r))
		}
		b.WriteString(".SH \"SEE ALSO\"\n" + strings.Join(refs, ",\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
