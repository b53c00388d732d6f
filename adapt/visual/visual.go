// Package visual draws a deployment architecture: targets as boxes, the
// services placed on them inside, solid arrows for dependsOn and dashed
// ones for connectsTo. It renders the same diagram as Graphviz DOT and as a
// self-contained SVG (laid out here, no external tools or assets), for
// dydisnix-visualize and the self-adapt status page.
package visual

import (
	"context"
	"fmt"
	"html"
	"math"
	"os/exec"
	"sort"
	"strings"
	"time"

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
	// Containers maps a service to the container it runs in on this
	// target (absent: none named).
	Containers map[string]string
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
	// Marks annotates service instances: MarkUnhealthy, or MarkMoved
	// followed by a note such as "from a".
	Marks map[Node]string
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
				for _, m := range dist[s] {
					if m.Target == t && m.Container != "" {
						if b.Containers == nil {
							b.Containers = map[string]string{}
						}
						b.Containers[s] = m.Container
					}
				}
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
	b.WriteString("  compound=true;\n  rankdir=LR;\n  fontname=\"sans-serif\";\n")
	b.WriteString("  node [shape=box,style=filled,fillcolor=white,color=black,fontname=\"sans-serif\"];\n")
	b.WriteString("  edge [fontname=\"sans-serif\"];\n")
	for _, box := range d.Boxes {
		fmt.Fprintf(&b, "  subgraph %s {\n", quote("cluster_"+box.Target))
		label := box.Target
		fill, stroke, style := "#eef3fb", "#3366cc", "filled"
		switch box.State {
		case "", "up":
		case "down":
			fill, stroke, style = "#fbe3e3", "#cc0000", "dashed,filled"
		case "leaving", "draining":
			fill, stroke, style = "#fff4dc", "#cc8800", "dashed,filled"
		default:
			fill, stroke, style = "#f2f2f2", "#888888", "dashed,filled"
		}
		if box.State != "" && box.State != "up" {
			label += " (" + box.State + ")"
		}
		fmt.Fprintf(&b, "    style=%s;\n    fillcolor=%s;\n    color=%s;\n    penwidth=2;\n", quote(style), quote(fill), quote(stroke))
		fmt.Fprintf(&b, "    label=%s;\n    id=%s;\n    class=%s;\n", quote(label), quote("target-"+box.Target), quote("target state-"+stateClass(box.State)))
		if len(box.Services) == 0 {
			fmt.Fprintf(&b, "    %s [label=\"(no services)\",style=dotted];\n", quote(box.Target+":"))
		}
		for _, g := range box.groups() {
			indent := "    "
			if g.container != "" {
				fmt.Fprintf(&b, "    subgraph %s {\n      label=%s;\n      style=\"dashed,filled\";\n      fillcolor=\"#f8f8f8\";\n      color=\"#999999\";\n      penwidth=1;\n", quote("cluster_"+box.Target+"/"+g.container), quote(g.container))
				indent = "      "
			}
			for _, s := range g.services {
				n := Node{s, box.Target}
				attr := ""
				switch mark := d.Marks[n]; {
				case mark == MarkUnhealthy:
					attr = ",fillcolor=\"#ffdddd\",color=red3"
				case strings.HasPrefix(mark, MarkMoved):
					attr = ",fillcolor=\"#fff3b0\",color=orange3,xlabel=" + quote(strings.TrimPrefix(mark, MarkMoved))
				}
				fmt.Fprintf(&b, "%s%s [label=%s,id=%s%s];\n", indent, quote(n.ID()), quote(s), quote(n.ID()), attr)
			}
			if g.container != "" {
				b.WriteString("    }\n")
			}
		}
		b.WriteString("  }\n")
	}
	for _, s := range d.Unplaced {
		fmt.Fprintf(&b, "  %s [label=%s,color=red];\n", quote(s), quote(s+"\n(unplaced)"))
	}
	for _, e := range d.Edges {
		attr := " [class=dependsOn]"
		if e.Dashed {
			attr = " [style=dashed,class=connectsTo]"
		}
		fmt.Fprintf(&b, "  %s -> %s%s;\n", quote(e.From.ID()), quote(e.To.ID()), attr)
	}
	b.WriteString("}\n")
	return b.String()
}

// Layout constants of the SVG picture.
const (
	boxW     = 220
	svcW     = 160
	svcH     = 28
	svcGap   = 12
	ctrHead  = 20
	ctrPad   = 8
	headerH  = 34
	colGap   = 90
	rowGap   = 70
	margin   = 50
	perRow   = 4
	fontSize = 13
	// lane is the spacing of parallel edges in a corridor.
	lane = 6
)

type rect struct{ x, y, w, h float64 }

func (r rect) cx() float64 { return r.x + r.w/2 }
func (r rect) cy() float64 { return r.y + r.h/2 }

// group is the services of one container of a box ("" when the mapping
// names none).
type group struct {
	container string
	services  []string
}

func (b Box) groups() []group {
	var out []group
	idx := map[string]int{}
	for _, s := range b.Services {
		c := b.Containers[s]
		i, ok := idx[c]
		if !ok {
			i = len(out)
			idx[c] = i
			out = append(out, group{container: c})
		}
		out[i].services = append(out[i].services, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].container < out[j].container })
	return out
}

// layout places the boxes in rows of perRow, the containers inside them
// and the services inside those.
type layout struct {
	boxes     []Box
	outer     []rect
	ctrs      [][]rect
	pos       map[Node]rect
	col, row  []int // of each box
	rowY      []float64
	colX      []float64
	w, h      float64
	boxOfNode map[Node]int
}

func (d *Diagram) layout() *layout {
	boxes := append([]Box(nil), d.Boxes...)
	if len(d.Unplaced) > 0 {
		boxes = append(boxes, Box{Target: "", State: "unplaced", Services: d.Unplaced})
	}
	lo := &layout{boxes: boxes, pos: map[Node]rect{}, boxOfNode: map[Node]int{}}
	x, y, rowH := float64(margin), float64(margin), 0.0
	lo.w, lo.h = margin, margin
	for i, box := range boxes {
		if i > 0 && i%perRow == 0 {
			x = margin
			y += rowH + rowGap
			rowH = 0
		}
		if i%perRow == 0 {
			lo.rowY = append(lo.rowY, y)
		}
		if i < perRow {
			lo.colX = append(lo.colX, x)
		}
		lo.col = append(lo.col, i%perRow)
		lo.row = append(lo.row, len(lo.rowY)-1)
		cy := y + headerH
		var ctrs []rect
		for _, g := range box.groups() {
			top := cy
			if g.container != "" {
				cy += ctrHead
			}
			for _, s := range g.services {
				n := Node{s, box.Target}
				lo.pos[n] = rect{x + (boxW-svcW)/2, cy, svcW, svcH}
				lo.boxOfNode[n] = i
				cy += svcH + svcGap
			}
			if g.container != "" {
				ctrs = append(ctrs, rect{x + (boxW-svcW)/2 - ctrPad, top, svcW + 2*ctrPad, cy - top - svcGap + ctrPad})
				cy += ctrPad + svcGap/2
			}
		}
		if len(box.Services) == 0 {
			cy += svcH + svcGap
		}
		h := cy - y
		lo.outer = append(lo.outer, rect{x, y, boxW, h})
		lo.ctrs = append(lo.ctrs, ctrs)
		rowH = math.Max(rowH, h)
		lo.w = math.Max(lo.w, x+boxW+margin)
		lo.h = math.Max(lo.h, y+h+margin)
		x += boxW + colGap
	}
	// The corridor right of the last column.
	lo.w += colGap / 2
	return lo
}

// route returns the polyline of an edge between two boxes: out of the
// source box's right side into the column corridor on its right, along
// the row corridor above the destination's row, down the corridor on the
// destination box's left, into its left side. Corridors are the gaps
// between boxes, so the edge never crosses a box; k spreads parallel
// edges over lanes.
func (lo *layout) route(from, to Node, k int) [][2]float64 {
	a, b := lo.pos[from], lo.pos[to]
	ba, bb := lo.boxOfNode[from], lo.boxOfNode[to]
	off := float64((k%5)-2) * lane
	x1, y1 := a.x+a.w, a.cy()
	xa := lo.outer[ba].x + boxW + colGap/2 + off
	x2, y2 := b.x, b.cy()
	xb := lo.outer[bb].x - colGap/2 + off
	if lo.col[bb] == 0 {
		xb = lo.outer[bb].x - margin/2 + off
	}
	yr := lo.rowY[lo.row[bb]] - rowGap/2 + off
	if lo.row[bb] == 0 {
		yr = lo.rowY[0] - margin/2 + off
	}
	if lo.row[ba] == lo.row[bb] && lo.col[bb] == lo.col[ba]+1 {
		// Neighbours: one corridor between them.
		return [][2]float64{{x1, y1}, {xa, y1}, {xa, y2}, {x2, y2}}
	}
	return [][2]float64{{x1, y1}, {xa, y1}, {xa, yr}, {xb, yr}, {xb, y2}, {x2, y2}}
}

// Marks annotate service instances on the picture (Diagram.Marks).
const (
	// MarkMoved: placed here by the last deploy.
	MarkMoved = "moved"
	// MarkUnhealthy: its agent reports it not running or unhealthy.
	MarkUnhealthy = "unhealthy"
)

// SVG renders the diagram as a standalone SVG document with the built-in
// layout: targets in rows, containers inside targets, services inside
// containers, edges routed through the gaps between targets.
func (d *Diagram) SVG() string {
	lo := d.layout()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="%d">`+"\n",
		lo.w, lo.h, lo.w, lo.h, fontSize)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>` + "\n")
	for i, box := range lo.boxes {
		r := lo.outer[i]
		fill, stroke, dash := "#eef3fb", "#36c", ""
		label := box.Target
		switch box.State {
		case "", "up":
		case "unplaced":
			fill, stroke, dash, label = "#fdecec", "#c33", ` stroke-dasharray="6,4"`, "(unplaced)"
		case "down":
			fill, stroke, dash = "#fbe3e3", "#c00", ` stroke-dasharray="6,4"`
			label += " (down)"
		case "leaving", "draining":
			fill, stroke, dash = "#fff4dc", "#c80", ` stroke-dasharray="6,4"`
			label += " (" + box.State + ")"
		default:
			fill, stroke, dash = "#f2f2f2", "#888", ` stroke-dasharray="6,4"`
			label += " (" + box.State + ")"
		}
		fmt.Fprintf(&b, `<g class="target state-%s" id="%s"><rect x="%g" y="%g" width="%g" height="%g" rx="8" fill="%s" stroke="%s" stroke-width="2"%s/>`,
			esc(stateClass(box.State)), esc("target-"+box.Target), r.x, r.y, r.w, r.h, fill, stroke, dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" font-weight="bold">%s</text>`, r.cx(), r.y+22, esc(label))
		if len(box.Services) == 0 {
			fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" fill="#888">(no services)</text>`, r.cx(), r.y+headerH+svcH/2+4)
		}
		b.WriteString("</g>\n")
		gi := 0
		for _, g := range box.groups() {
			if g.container == "" {
				continue
			}
			cr := lo.ctrs[i][gi]
			gi++
			fmt.Fprintf(&b, `<g class="container"><rect x="%g" y="%g" width="%g" height="%g" rx="6" fill="#f8f8f8" stroke="#999" stroke-dasharray="3,2"/><text x="%g" y="%g" font-size="11" fill="#555">%s</text></g>`+"\n",
				cr.x, cr.y, cr.w, cr.h, cr.x+6, cr.y+14, esc(g.container))
		}
		for _, s := range box.Services {
			n := Node{s, box.Target}
			sr := lo.pos[n]
			fill, stroke, extra := "#fff", "#333", ""
			switch mark := d.Marks[n]; {
			case mark == MarkUnhealthy:
				fill, stroke = "#fdd", "#c00"
			case strings.HasPrefix(mark, MarkMoved):
				fill, stroke = "#fff3b0", "#b80"
				extra = fmt.Sprintf(`<text x="%g" y="%g" font-size="10" fill="#960">%s</text>`, sr.x, sr.y-2, esc(strings.TrimPrefix(mark, MarkMoved)))
			}
			fmt.Fprintf(&b, `<g class="service %s" id="%s"><rect x="%g" y="%g" width="%g" height="%g" rx="4" fill="%s" stroke="%s"/><text x="%g" y="%g" text-anchor="middle">%s</text>%s</g>`+"\n",
				esc(markClass(d.Marks[n])), esc(n.ID()), sr.x, sr.y, sr.w, sr.h, fill, stroke, sr.cx(), sr.cy()+4, esc(s), extra)
		}
	}
	for k, e := range d.Edges {
		from, ok1 := lo.pos[e.From]
		to, ok2 := lo.pos[e.To]
		if !ok1 || !ok2 {
			continue
		}
		dash, class := "", "dependsOn"
		if e.Dashed {
			dash, class = ` stroke-dasharray="5,4"`, "connectsTo"
		}
		var path string
		if lo.boxOfNode[e.From] == lo.boxOfNode[e.To] {
			// Inside one target: an arc in the box's right margin, so it
			// never crosses the services stacked in between.
			x1, y1 := from.x+from.w, from.cy()
			x2, y2 := to.x+to.w, to.cy()
			bulge := math.Min(26, 10+math.Abs(y2-y1)/6)
			path = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1+bulge, y1, x2+bulge, y2, x2, y2)
		} else {
			pts := lo.route(e.From, e.To, k)
			var p strings.Builder
			for i, pt := range pts {
				cmd := "L"
				if i == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&p, "%s%.1f,%.1f ", cmd, pt[0], pt[1])
			}
			path = strings.TrimSpace(p.String())
		}
		fmt.Fprintf(&b, `<path class="%s" d="%s" fill="none" stroke="#333" stroke-width="1.5"%s marker-end="url(#arrow)"/>`+"\n",
			class, path, dash)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func stateClass(s string) string {
	if s == "" {
		return "up"
	}
	return s
}

func markClass(m string) string {
	if strings.HasPrefix(m, MarkMoved) {
		return MarkMoved
	}
	return m
}

// Render returns the picture as SVG: laid out by Graphviz's dot (edges
// routed around the boxes) when it is installed and answers within ctx,
// by the built-in layout otherwise.
func (d *Diagram) Render(ctx context.Context) string {
	path, err := exec.LookPath("dot")
	if err != nil {
		return d.SVG()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin = strings.NewReader(d.DOT())
	out, err := cmd.Output()
	if err != nil {
		return d.SVG()
	}
	svg := string(out)
	// Drop the XML prolog and doctype: the picture is embedded in a page.
	if i := strings.Index(svg, "<svg"); i >= 0 {
		svg = svg[i:]
	}
	return svg
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
