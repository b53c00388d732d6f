package portassign

import (
	"strconv"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// attrWriter prints nested attribute sets in the layout of the reference's
// ids.nix: quoted keys, two-space indentation, closing braces at the
// indentation of their key, no trailing newline.
type attrWriter struct {
	b strings.Builder
}

func (w *attrWriter) indent(n int) { w.b.WriteString(strings.Repeat(" ", n)) }

// open starts an attribute whose value is an attribute set.
func (w *attrWriter) open(depth int, key string) {
	w.indent(2 * depth)
	w.b.WriteString(model.QuoteNix(key))
	w.b.WriteString(" = {\n")
}

// close ends the attribute set opened at depth.
func (w *attrWriter) close(depth int) {
	w.indent(2 * depth)
	w.b.WriteString("};\n")
}

// int writes key = n; at depth.
func (w *attrWriter) int(depth int, key string, n int64) {
	w.indent(2 * depth)
	w.b.WriteString(model.QuoteNix(key))
	w.b.WriteString(" = ")
	w.b.WriteString(strconv.FormatInt(n, 10))
	w.b.WriteString(";\n")
}

// intTable writes key = { k = n; ... }; with sorted keys.
func (w *attrWriter) intTable(depth int, key string, m map[string]int64) {
	w.open(depth, key)
	for _, k := range model.SortedKeys(m) {
		w.int(depth+1, k, m[k])
	}
	w.close(depth)
}
