package visualize

import (
	"slices"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// node is a service as the documentation tools see it, or a group node
// standing for a subgroup.
type node struct {
	name, typ, group      string
	dependsOn, connectsTo []string
	svc                   *model.Service // nil for a group node
	groupNode             bool
}

// graph is the nodes of one page, by name.
type graph map[string]*node

// newNode is the node of a service, with copies of its dependency lists.
func newNode(s *model.Service) *node {
	group, _ := s.Attrs["group"].(string)
	return &node{
		name: s.Name, typ: s.Type, group: group, svc: s,
		dependsOn:  slices.Clone(s.DependsOn),
		connectsTo: slices.Clone(s.ConnectsTo),
	}
}

// names are the graph's node names, sorted.
func (g graph) names() []string { return model.SortedKeys(g) }

// inGroup reports whether a service's group is group or lies below it;
// every group is in "".
func inGroup(serviceGroup, group string) bool {
	return group == "" || serviceGroup == group || strings.HasPrefix(serviceGroup, group+"/")
}

// members is the graph of the services in group.
func members(svcs model.Services, group string) graph {
	g := graph{}
	for name, s := range svcs {
		n := newNode(s)
		if inGroup(n.group, group) {
			g[name] = n
		}
	}
	return g
}

// withContext adds to the members of a group what a diagram shows around
// them: the services outside the group that a member uses, without their
// own dependencies, and the services outside it that use a member, with
// only their edges to nodes already in the picture.
func withContext(svcs model.Services, g graph) graph {
	inside := func(name string) bool { _, ok := g[name]; return ok }
	var used []string
	for _, name := range g.names() {
		n := g[name]
		for _, dep := range append(slices.Clone(n.connectsTo), n.dependsOn...) {
			if !inside(dep) && svcs[dep] != nil && !slices.Contains(used, dep) {
				used = append(used, dep)
			}
		}
	}
	var users []string
	for _, name := range svcs.Names() {
		if inside(name) {
			continue
		}
		s := svcs[name]
		if slices.ContainsFunc(s.Inter(), inside) {
			users = append(users, name)
		}
	}
	for _, name := range used {
		n := newNode(svcs[name])
		n.dependsOn, n.connectsTo = nil, nil
		g[name] = n
	}
	for _, name := range users {
		if _, ok := g[name]; ok {
			continue
		}
		n := newNode(svcs[name])
		n.dependsOn = slices.DeleteFunc(n.dependsOn, func(d string) bool { return g[d] == nil })
		n.connectsTo = slices.DeleteFunc(n.connectsTo, func(d string) bool { return g[d] == nil })
		g[name] = n
	}
	return g
}

// splitGroup splits a group path into its components ("" has none).
func splitGroup(group string) []string {
	if group == "" {
		return nil
	}
	return strings.Split(group, "/")
}

// subgroupRoot is the group node a service of serviceGroup collapses into
// on the page of group: the first component where its path leaves group's,
// or the one below group. ok is false when the service's group is group
// itself or above it: the service is drawn as itself.
func subgroupRoot(serviceGroup string, group []string) (root string, ok bool) {
	own := splitGroup(serviceGroup)
	for i, c := range own {
		if i >= len(group) || c != group[i] {
			return c, true
		}
	}
	return "", false
}

// collapse groups the subservices of group: every service below group
// becomes the group node of its subgroup; edges into a subgroup point at
// its node, without duplicates and self-loops; a group node has the union
// of its members' edges.
func collapse(g graph, group string) graph {
	path := splitGroup(group)
	rep := map[string]string{} // member service → its group node
	for name, n := range g {
		if root, ok := subgroupRoot(n.group, path); ok {
			rep[name] = root
		}
	}
	mapped := func(self string, deps []string, into []string) []string {
		for _, d := range deps {
			if r, ok := rep[d]; ok {
				d = r
			}
			if d != self && !slices.Contains(into, d) {
				into = append(into, d)
			}
		}
		return into
	}
	out := graph{}
	for _, name := range g.names() {
		n := g[name]
		root, grouped := rep[name]
		if !grouped {
			c := *n
			c.dependsOn = mapped(name, n.dependsOn, nil)
			c.connectsTo = mapped(name, n.connectsTo, nil)
			out[name] = &c
			continue
		}
		gn := out[root]
		if gn == nil {
			gn = &node{name: root, groupNode: true}
			out[root] = gn
		}
		gn.dependsOn = mapped(root, n.dependsOn, gn.dependsOn)
		gn.connectsTo = mapped(root, n.connectsTo, gn.connectsTo)
	}
	return out
}

// Groups returns the distinct non-empty groups of the services, sorted:
// the pages of a catalog besides the root.
func Groups(svcs model.Services) []string {
	seen := map[string]bool{}
	for _, s := range svcs {
		if g, _ := s.Attrs["group"].(string); g != "" {
			seen[g] = true
		}
	}
	out := model.SortedKeys(seen)
	sort.Strings(out)
	return out
}
