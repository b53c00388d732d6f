// Package visual draws a deployment architecture: targets as boxes, the
// services placed on them inside, solid arrows for dependsOn and dashed
// ones for connectsTo. It renders the same diagram as Graphviz DOT and as a
// self-contained SVG (laid out here, no external tools or assets), for
// dydisnix-visualize and the self-adapt status page.
package visual

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// Node is one service instance: a service on a target ("" when unplaced).
type Node struct {
	Service string
	Target  string
}

// ID returns the node's DOT identifier.
func (n Node) ID() string {
	if n.Target == "" {
		return n.Service
	}
	return n.Service + "@" + n.Target
}

// Box is one target and the services placed on it.
type Box struct {
	Target string
	// State is an optional annotation (e.g. "probation"), drawn greyed
	// when not "" or "up".
	State    string
	Services []string
}

// Edge is an inter-dependency between two instances.
type Edge struct {
	From, To Node
	// Dashed marks connectsTo (no activation order); solid is dependsOn.
	Dashed bool
}

// Diagram is a laid-out-ready deployment architecture.
type Diagram struct {
	Boxes []Box
	// Unplaced lists services of the model without any target.
	Unplaced []string
	Edges    []Edge
}

// Build makes the diagram of svcs distributed over targets by dist.
// states optionally annotates targets. Every name is sorted so the output
// is deterministic.
func Build(svcs model.Services, targets []string, dist model.Distribution, states map[string]string) *Diagram {
	d := &Diagram{}
	placed := map[string][]string{} // service -> targets
	seen := map[string]bool{}
	names := append([]string(nil), targets...)
	for _, s := range dist.Names() {
		for _, t := range dist.Targets(s) {
			if !contains(placed[s], t) {
				placed[s] = append(placed[s], t)
			}
			if !contains(names, t) {
				names = append(names, t)
			}
		}
	}
	sort.Strings(names)
	for _, t := range names {
		if seen[t] {
			continue
		}
		seen[t] = true
		b := Box{Target: t, State: states[t]}
		for _, s := range dist.Names() {
			if contains(placed[s], t) {
				b.Services = append(b.Services, s)
			}
		}
		d.Boxes = append(d.Boxes, b)
	}
	svcNames := svcs.Names()
	for _, s := range svcNames {
		if len(placed[s]) == 0 {
			d.Unplaced = append(d.Unplaced, s)
		}
	}
	inst := func(s string) []Node {
		if len(placed[s]) == 0 {
			if _, ok := svcs[s]; ok {
				return []Node{{Service: s}}
			}
			return nil
		}
		var out []Node
		for _, t := range placed[s] {
			out = append(out, Node{s, t})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
		return out
	}
	all := map[string]bool{}
	for _, s := range svcNames {
		all[s] = true
	}
	for s := range placed {
		all[s] = true
	}
	for _, s := range sortedSet(all) {
		svc := svcs[s]
		if svc == nil {
			continue
		}
		for _, from := range inst(s) {
			for _, dep := range svc.DependsOn {
				for _, to := range inst(dep) {
					d.Edges = append(d.Edges, Edge{From: from, To: to})
				}
			}
			for _, dep := range svc.ConnectsTo {
				for _, to := range inst(dep) {
					d.Edges = append(d.Edges, Edge{From: from, To: to, Dashed: true})
				}
			}
		}
	}
	return d
}

// DOT renders the diagram as a Graphviz digraph: one cluster per target.
func (d *Diagram) DOT() string {
	var b strings.Builder
	b.WriteString("digraph G {\n")
	b.WriteString("  compound=true;\n  rankdir=LR;\n")
	b.WriteString("  node [shape=box,style=filled,fillcolor=white,color=black];\n")
	for _, box := range d.Boxes {
		fmt.Fprintf(&b, "  subgraph %s {\n", quote("cluster_"+box.Target))
		label := box.Target
		if box.State != "" && box.State != "up" {
			label += " (" + box.State + ")"
			b.WriteString("    style=dashed;\n")
		}
		fmt.Fprintf(&b, "    label=%s;\n", quote(label))
		if len(box.Services) == 0 {
			fmt.Fprintf(&b, "    %s [label=\"(no services)\",style=dotted];\n", quote(box.Target+":"))
		}
		for _, s := range box.Services {
			fmt.Fprintf(&b, "    %s [label=%s];\n", quote(Node{s, box.Target}.ID()), quote(s))
		}
		b.WriteString("  }\n")
	}
	for _, s := range d.Unplaced {
		fmt.Fprintf(&b, "  %s [label=%s,color=red];\n", quote(s), quote(s+"\n(unplaced)"))
	}
	for _, e := range d.Edges {
		attr := ""
		if e.Dashed {
			attr = " [style=dashed]"
		}
		fmt.Fprintf(&b, "  %s -> %s%s;\n", quote(e.From.ID()), quote(e.To.ID()), attr)
	}
	b.WriteString("}\n")
	return b.String()
}

// Layout constants of the SVG picture.
const (
	boxW     = 200
	svcW     = 160
	svcH     = 28
	svcGap   = 12
	headerH  = 34
	colGap   = 70
	rowGap   = 50
	margin   = 20
	perRow   = 4
	fontSize = 13
)

type rect struct{ x, y, w, h float64 }

func (r rect) cx() float64 { return r.x + r.w/2 }
func (r rect) cy() float64 { return r.y + r.h/2 }

// border returns where the segment from r's centre towards (px, py) leaves r.
func (r rect) border(px, py float64) (float64, float64) {
	dx, dy := px-r.cx(), py-r.cy()
	if dx == 0 && dy == 0 {
		return r.cx(), r.cy()
	}
	sx, sy := math.Inf(1), math.Inf(1)
	if dx != 0 {
		sx = (r.w / 2) / math.Abs(dx)
	}
	if dy != 0 {
		sy = (r.h / 2) / math.Abs(dy)
	}
	s := math.Min(sx, sy)
	return r.cx() + dx*s, r.cy() + dy*s
}

// SVG renders the diagram as a standalone SVG document.
func (d *Diagram) SVG() string {
	boxes := append([]Box(nil), d.Boxes...)
	if len(d.Unplaced) > 0 {
		boxes = append(boxes, Box{Target: "", State: "unplaced", Services: d.Unplaced})
	}
	pos := map[Node]rect{}
	var outer []rect
	width, height := float64(margin), float64(margin)
	x, y, rowH := float64(margin), float64(margin), 0.0
	for i, box := range boxes {
		if i > 0 && i%perRow == 0 {
			x = margin
			y += rowH + rowGap
			rowH = 0
		}
		n := len(box.Services)
		if n == 0 {
			n = 1
		}
		h := float64(headerH + n*(svcH+svcGap))
		r := rect{x, y, boxW, h}
		outer = append(outer, r)
		for j, s := range box.Services {
			pos[Node{s, box.Target}] = rect{x + (boxW-svcW)/2, y + headerH + float64(j*(svcH+svcGap)), svcW, svcH}
		}
		rowH = math.Max(rowH, h)
		width = math.Max(width, x+boxW+margin)
		height = math.Max(height, y+h+margin)
		x += boxW + colGap
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="%d">`+"\n",
		width, height, width, height, fontSize)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>` + "\n")
	for i, box := range boxes {
		r := outer[i]
		fill, stroke, dash := "#eef3fb", "#36c", ""
		label := box.Target
		switch {
		case box.State == "unplaced":
			fill, stroke, dash, label = "#fdecec", "#c33", ` stroke-dasharray="6,4"`, "(unplaced)"
		case box.State != "" && box.State != "up":
			fill, stroke, dash = "#f2f2f2", "#888", ` stroke-dasharray="6,4"`
			label += " (" + box.State + ")"
		}
		fmt.Fprintf(&b, `<g class="target" id="%s"><rect x="%g" y="%g" width="%g" height="%g" rx="8" fill="%s" stroke="%s" stroke-width="2"%s/>`,
			esc("target-"+box.Target), r.x, r.y, r.w, r.h, fill, stroke, dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" font-weight="bold">%s</text>`, r.cx(), r.y+22, esc(label))
		if len(box.Services) == 0 {
			fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" fill="#888">(no services)</text>`, r.cx(), r.y+headerH+svcH/2+4)
		}
		b.WriteString("</g>\n")
		for _, s := range box.Services {
			sr := pos[Node{s, box.Target}]
			fmt.Fprintf(&b, `<g class="service" id="%s"><rect x="%g" y="%g" width="%g" height="%g" rx="4" fill="#fff" stroke="#333"/><text x="%g" y="%g" text-anchor="middle">%s</text></g>`+"\n",
				esc(Node{s, box.Target}.ID()), sr.x, sr.y, sr.w, sr.h, sr.cx(), sr.cy()+4, esc(s))
		}
	}
	for _, e := range d.Edges {
		from, ok1 := pos[e.From]
		to, ok2 := pos[e.To]
		if !ok1 || !ok2 {
			continue
		}
		dash, class := "", "dependsOn"
		if e.Dashed {
			dash, class = ` stroke-dasharray="5,4"`, "connectsTo"
		}
		var path string
		if e.From.Target == e.To.Target {
			// Inside one target: an arc on the right side, so it never
			// crosses the services stacked in between.
			x1, y1 := from.x+from.w, from.cy()
			x2, y2 := to.x+to.w, to.cy()
			bulge := 14 + math.Abs(y2-y1)/6
			path = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1+bulge, y1, x2+bulge, y2, x2, y2)
		} else {
			// Between targets: a gentle curve bent to the left of the
			// direction of travel, so the two edges of a connectsTo pair
			// (a → b, b → a) stay apart.
			x1, y1 := from.border(to.cx(), to.cy())
			x2, y2 := to.border(from.cx(), from.cy())
			dx, dy := x2-x1, y2-y1
			l := math.Hypot(dx, dy)
			if l == 0 {
				continue
			}
			mx, my := (x1+x2)/2-dy/l*18, (y1+y2)/2+dx/l*18
			path = fmt.Sprintf("M%.1f,%.1f Q%.1f,%.1f %.1f,%.1f", x1, y1, mx, my, x2, y2)
		}
		fmt.Fprintf(&b, `<path class="%s" d="%s" fill="none" stroke="#333" stroke-width="1.5"%s marker-end="url(#arrow)"/>`+"\n",
			class, path, dash)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

func esc(s string) string { return html.EscapeString(s) }

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
