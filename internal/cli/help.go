package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Layout of the options list.
const (
	helpWidth    = 80 // wrap descriptions at this column
	maxFlagWidth = 34 // a longer flag column puts its description on the next line
)

// Options lists the flags of fs, one per entry, hidden flags left out and
// -h/--help and --version last:
//
//	-s, --services FILE        services model (required)
//	    --state-dir DIR        coordinator state directory ...
//
// A back-quoted word in a flag's usage names its value: it is shown after
// the flag, and in the text without its quotes (at the start of the usage
// it is left out of the text). Without one, a flag with a value shows its
// type in capitals. A default that is not the zero value closes the
// description as "(default X)". Descriptions wrap at 80 columns; a newline
// in a usage starts a new line.
func Options(fs *pflag.FlagSet) string {
	var flags, last []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		switch {
		case f.Hidden:
		case f.Name == "help" || f.Name == "version":
			last = append(last, f)
		default:
			flags = append(flags, f)
		}
	})
	flags = append(flags, last...)
	heads := make([]string, len(flags))
	texts := make([]string, len(flags))
	col := 0
	for i, f := range flags {
		heads[i], texts[i] = describe(f)
		if n := len(heads[i]); n <= maxFlagWidth && n > col {
			col = n
		}
	}
	col += 2
	var b strings.Builder
	for i, head := range heads {
		lines := Wrap(texts[i], helpWidth-col)
		if len(head)+2 > col && len(lines) > 0 {
			b.WriteString(head + "\n")
			head = ""
		}
		if len(lines) == 0 {
			lines = []string{""}
		}
		for j, line := range lines {
			if j > 0 {
				head = ""
			}
			b.WriteString(strings.TrimRight(fmt.Sprintf("%-*s%s", col, head, line), " ") + "\n")
		}
	}
	return b.String()
}

// describe returns a flag's head ("  -s, --services FILE") and its text.
func describe(f *pflag.Flag) (head, text string) {
	head = "      --" + f.Name
	if f.Shorthand != "" {
		head = "  -" + f.Shorthand + ", --" + f.Name
	}
	name, text := valueName(f)
	if name != "" {
		head += " " + name
	}
	if !zeroDefault(f.DefValue) {
		def := f.DefValue
		if f.Value.Type() == "string" {
			def = fmt.Sprintf("%q", def)
		}
		text += " (default " + def + ")"
	}
	return head, text
}

// valueName finds the value's name in a flag's usage (see Options).
func valueName(f *pflag.Flag) (name, text string) {
	text = f.Usage
	if i := strings.IndexByte(text, '`'); i >= 0 {
		if j := strings.IndexByte(text[i+1:], '`'); j >= 0 {
			name = text[i+1 : i+1+j]
			if i == 0 {
				return name, strings.TrimLeft(text[j+2:], " ")
			}
			return name, text[:i] + name + text[i+2+j:]
		}
	}
	switch t := f.Value.Type(); t {
	case "bool":
		return "", text
	case "stringArray", "stringSlice":
		return "STRING", text
	default:
		return strings.ToUpper(t), text
	}
}

func zeroDefault(def string) bool {
	switch def {
	case "", "false", "0", "0s", "[]":
		return true
	}
	return false
}

// Wrap breaks text into lines of at most width bytes at spaces (a longer
// word stands alone); a newline in text always breaks.
func Wrap(text string, width int) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+1+len(w) > width {
				lines = append(lines, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		lines = append(lines, line)
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}
