package visualize

import (
	"fmt"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// ServicesDOT is the diagram dydisnix-visualize-services prints: the
// services of group with their context (see the package comment), the
// subgroups collapsed into group nodes when subservices is set. A node's
// label is its name, what it provides ("name →\ncontainer" for
// providesContainer, "name\n → { a\n, b\n}" for providesContainers) and
// "\n(type)"; group nodes are dashed, container providers drawn with a
// double border; dependsOn edges are solid, connectsTo edges dashed.
func ServicesDOT(svcs model.Services, group string, subservices bool) string {
	g := withContext(svcs, members(svcs, group))
	if subservices {
		g = collapse(g, group)
	}
	return diagram(g)
}

// diagram writes the DOT text of a page's graph.
func diagram(g graph) string {
	var b strings.Builder
	b.WriteString("digraph G {\n")
	b.WriteString("node [style=filled,fillcolor=white,color=black];\n")
	names := g.names()
	for _, name := range names {
		n := g[name]
		label, provider := nodeLabel(n)
		fmt.Fprintf(&b, "%s [ label = \"%s\"", dotID(name), label)
		if n.groupNode {
			b.WriteString(", style=dashed")
		}
		if provider {
			b.WriteString(", peripheries=2")
		}
		b.WriteString(" ]\n")
	}
	b.WriteString("\n")
	for _, name := range names {
		n := g[name]
		for _, d := range n.dependsOn {
			fmt.Fprintf(&b, "%s -> %s\n", dotID(name), dotID(d))
		}
		for _, d := range n.connectsTo {
			fmt.Fprintf(&b, "%s -> %s [style=dashed]\n", dotID(name), dotID(d))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// nodeLabel is the text of a node's label (DOT escapes included: "\n" is a
// backslash and an n, a DOT line break) and whether it provides containers.
func nodeLabel(n *node) (string, bool) {
	label := dotText(n.name)
	provider := false
	if n.svc != nil {
		if c, ok := n.svc.Attrs["providesContainer"].(string); ok {
			label += ` &#8594;\n` + dotText(c)
			provider = true
		} else if cs, ok := n.svc.Attrs["providesContainers"].(map[string]any); ok {
			label += `\n &#8594; { `
			for i, c := range model.SortedKeys(cs) {
				if i > 0 {
					label += ", "
				}
				label += dotText(c) + `\n`
			}
			label += "}"
			provider = true
		}
	}
	if n.typ != "" {
		label += `\n(` + dotText(n.typ) + ")"
	}
	return label, provider
}

// dotID quotes a name as a DOT identifier.
func dotID(name string) string { return `"` + dotText(name) + `"` }

// dotText escapes the characters that would end or break a quoted DOT
// string: a double quote and a backslash.
func dotText(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// InfraDOT is the diagram dydisnix-visualize-infra prints: each target a
// grey box holding a darker box of its containers, one record per
// container; a target without containers shows "(no defined containers)".
func InfraDOT(infra model.Infrastructure) string {
	var b strings.Builder
	b.WriteString("digraph G {\n")
	for _, name := range infra.Names() {
		t := infra[name]
		fmt.Fprintf(&b, "subgraph %s {\nstyle=filled;\nlabel=\"%s\"\nfillcolor=grey\n", clusterID("cluster_target_"+name), dotText(name))
		fmt.Fprintf(&b, "subgraph %s {\nstyle=filled;\nlabel=\"containers\"\nfillcolor=grey40\n", clusterID("cluster_container_"+name))
		b.WriteString("node [shape=record,style=filled,color=black,fillcolor=white]\n")
		if len(t.Containers) == 0 {
			fmt.Fprintf(&b, "%s [ label = \"(no defined containers)\" ]\n", dotID(name+":"))
		}
		for _, c := range model.SortedKeys(t.Containers) {
			fmt.Fprintf(&b, "%s [ label = \"%s\" ]\n", dotID(name+":"+c), recordText(c))
		}
		b.WriteString("}\n}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// clusterID writes a subgraph name bare when it is a DOT identifier (as
// the original does), quoted otherwise (a target name with a dash or a dot).
func clusterID(id string) string {
	for _, r := range id {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return dotID(id)
		}
	}
	return id
}

// recordText escapes a record label's field separators and braces, so a
// container name is one field.
func recordText(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "|", `\|`, "{", `\{`, "}", `\}`, "<", `\<`, ">", `\>`).Replace(s)
}
