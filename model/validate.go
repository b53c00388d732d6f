package model

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Validate checks a services model: every key and name non-empty and equal,
// no duplicate names, dependsOn/connectsTo naming known services (and never
// a service of type "package", which Disnix refuses as the target of an
// inter-dependency), no dependsOn cycle, and the types of the attributes
// Disnix and dydisnix give a meaning to. file is used in the messages. All
// problems are returned joined (errors.Join), sorted by file and place.
func (s Services) Validate(file string) error {
	var errs []error
	add := func(place, format string, args ...any) {
		errs = append(errs, errAt(file, place, format, args...))
	}
	names := s.Names()
	// renamed are the names of services whose name differs from their key:
	// only they can clash with another service's name.
	var renamed map[string]bool
	for _, key := range names {
		svc := s[key]
		if key == "" {
			add(attrPath(key), "a service has an empty name")
		}
		if svc == nil {
			add(attrPath(key), "expected a service attribute set, got null")
			continue
		}
		switch {
		case svc.Name == "" && key != "":
			add(attrPath(key, AttrName), "expected a non-empty service name")
		case svc.Name != key:
			add(attrPath(key, AttrName), "the name attribute is %q but the service is defined as %q: they must be equal", svc.Name, key)
			if svc.Name != "" {
				if renamed == nil {
					renamed = map[string]bool{}
				}
				renamed[svc.Name] = true
			}
		}
		if svc.Type == "" {
			if v, ok := svc.Attrs[AttrType]; ok {
				add(attrPath(key, AttrType), "expected a string, got %s", TypeName(v))
			}
		}
		for _, link := range [2]struct {
			attr  string
			names []string
		}{{AttrDependsOn, svc.DependsOn}, {AttrConnectsTo, svc.ConnectsTo}} {
			for i, dep := range link.names {
				d, ok := s[dep]
				if dep != "" && ok && (d == nil || d.Type != "package") {
					continue
				}
				p := fmt.Sprintf("%s[%d]", attrPath(key, link.attr), i)
				switch {
				case dep == "":
					add(p, "expected a service name, got an empty string")
				case !ok:
					add(p, "unknown service %q%s", dep, suggest(dep, names))
				default:
					add(p, "service %q has type \"package\", which cannot be the target of an inter-dependency", dep)
				}
			}
		}
		validateServiceAttrs(key, svc, add)
	}
	if renamed != nil {
		byName := map[string][]string{}
		for _, key := range names {
			if svc := s[key]; svc != nil && renamed[svc.Name] {
				byName[svc.Name] = append(byName[svc.Name], key)
			}
		}
		for name, keys := range byName {
			if len(keys) > 1 {
				add(attrPath(keys[0], AttrName), "duplicate service name %q, also used by %s", name, strings.Join(quoteAll(keys[1:]), ", "))
			}
		}
	}
	for _, cycle := range dependsOnCycles(s, names) {
		add(attrPath(cycle[0], AttrDependsOn),
			"dependsOn cycle %s: Disnix cannot order the activation of these services; use connectsTo for a link that needs no activation order",
			strings.Join(cycle, " -> "))
	}
	return joinSorted(errs)
}

// serviceAttrTypes lists the types of the service attributes Disnix and
// dydisnix interpret.
var serviceAttrTypes = map[string]string{
	"deployState":          "bool",
	"stateful":             "bool",
	"group":                "string",
	"description":          "string",
	"providesContainer":    "string",
	"providesContainers":   "attribute set",
	"requiresUniqueIdsFor": "list of strings",
	"portAssign":           "string",
	AttrPkg:                "string",
}

func validateServiceAttrs(key string, svc *Service, add func(place, format string, args ...any)) {
	for attr, v := range svc.Attrs { // errors are sorted in the end
		want, ok := serviceAttrTypes[attr]
		if !ok {
			continue
		}
		if !hasType(v, want) {
			add(attrPath(key, attr), "expected a %s, got %s", want, TypeName(v))
			continue
		}
		switch attr {
		case "portAssign":
			if v != "shared" && v != "private" {
				add(attrPath(key, attr), "expected \"shared\" or \"private\", got %q", v)
			}
		case "providesContainers":
			for _, c := range SortedKeys(v.(map[string]any)) {
				if _, ok := v.(map[string]any)[c].(map[string]any); !ok {
					add(attrPath(key, attr, c), "expected an attribute set of container properties, got %s", TypeName(v.(map[string]any)[c]))
				}
			}
		}
	}
}

func hasType(v any, want string) bool {
	switch want {
	case "bool":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "attribute set":
		_, ok := v.(map[string]any)
		return ok
	case "list of strings":
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	case "int":
		n, ok := v.(json.Number)
		return ok && IsInt(n)
	}
	return true
}

// dependsOnCycles returns one cycle per strongly connected component of the
// dependsOn graph that has a cycle, each starting and ending at the
// component's smallest service name, e.g. [a b c a]. Cycles are sorted.
// names are the service names, sorted. Tarjan's algorithm runs on indices
// into names; names are looked at again only for a component with a cycle.
func dependsOnCycles(s Services, names []string) [][]string {
	n := len(names)
	adj := make([][]int32, n)
	total := 0
	for _, svc := range s {
		if svc != nil {
			total += len(svc.DependsOn)
		}
	}
	buf := make([]int32, 0, total) // one backing array for every list
	for i, name := range names {
		start := len(buf)
		buf = appendDepIndices(buf, s[name], names)
		adj[i] = buf[start:len(buf):len(buf)]
	}
	const unvisited = -1
	order := make([]int32, n) // visiting order, unvisited before
	low := make([]int32, n)
	onStack := make([]bool, n)
	for i := range order {
		order[i] = unvisited
	}
	var stack []int32
	var cycles [][]string
	counter := int32(0)
	var strong func(v int32)
	strong = func(v int32) {
		order[v], low[v] = counter, counter
		counter++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range adj[v] {
			if order[w] == unvisited {
				strong(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], order[w])
			}
		}
		if low[v] != order[v] {
			return
		}
		var comp []int32
		for {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[w] = false
			comp = append(comp, w)
			if w == v {
				break
			}
		}
		if len(comp) == 1 && !slices.Contains(adj[v], v) {
			return
		}
		slices.Sort(comp) // names are sorted: the smallest index is the smallest name
		in := make(map[string]bool, len(comp))
		named := make(map[string][]string, len(comp))
		for _, c := range comp {
			in[names[c]] = true
		}
		for _, c := range comp {
			for _, d := range adj[c] {
				named[names[c]] = append(named[names[c]], names[d])
			}
		}
		cycles = append(cycles, shortestCycle(named, names[comp[0]], in))
	}
	for v := range int32(n) {
		if order[v] == unvisited {
			strong(v)
		}
	}
	sort.Slice(cycles, func(i, j int) bool { return cycles[i][0] < cycles[j][0] })
	return cycles
}

// appendDepIndices appends to buf the indices in names (sorted) of the
// known dependsOn targets of a service, sorted and unique (so in name
// order).
func appendDepIndices(buf []int32, svc *Service, names []string) []int32 {
	if svc == nil {
		return buf
	}
	start := len(buf)
	for _, d := range svc.DependsOn {
		if i, ok := slices.BinarySearch(names, d); ok {
			buf = append(buf, int32(i))
		}
	}
	deps := buf[start:]
	slices.Sort(deps)
	return buf[:start+len(slices.Compact(deps))]
}

// shortestCycle finds a shortest path start → ... → start inside a component.
func shortestCycle(adj map[string][]string, start string, in map[string]bool) []string {
	prev := map[string]string{}
	queue := []string{start}
	visited := map[string]bool{}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range adj[v] {
			if !in[w] {
				continue
			}
			if w == start {
				path := []string{start}
				for u := v; u != start; u = prev[u] {
					path = append(path, u)
				}
				// path is start, v, ..., reversed after the first element.
				out := []string{start}
				for i := len(path) - 1; i >= 1; i-- {
					out = append(out, path[i])
				}
				return append(out, start)
			}
			if !visited[w] {
				visited[w] = true
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return []string{start, start}
}

// Validate checks an infrastructure model: non-empty target names, an
// explicit targetProperty naming an existing property, a string hostname,
// string system/clientInterface/targetProperty, a positive integer
// numOfCores and non-empty container names. All problems are returned
// joined, sorted.
func (i Infrastructure) Validate(file string) error {
	var errs []error
	add := func(place, format string, args ...any) {
		errs = append(errs, errAt(file, place, format, args...))
	}
	for _, name := range i.Names() {
		t := i[name]
		if name == "" {
			add(attrPath(name), "a target has an empty name")
		}
		if t == nil {
			add(attrPath(name), "expected a target attribute set, got null")
			continue
		}
		if v, ok := t.Properties["hostname"]; ok {
			if _, isStr := v.(string); !isStr {
				add(attrPath(name, "properties", "hostname"), "expected a string, got %s", TypeName(v))
			}
		}
		for _, attr := range []string{"system", "clientInterface", "targetProperty"} {
			if v, ok := t.Extra[attr]; ok {
				if _, isStr := v.(string); !isStr {
					add(attrPath(name, attr), "expected a string, got %s", TypeName(v))
				}
			}
		}
		if tp, ok := t.Extra["targetProperty"].(string); ok {
			if _, has := t.Properties[tp]; !has {
				add(attrPath(name, "properties"), "targetProperty is %q but the target has no property %q", tp, tp)
			}
		}
		if v, ok := t.Extra["numOfCores"]; ok {
			n, isNum := v.(json.Number)
			if !isNum || !IsInt(n) || Atoi(string(n)) < 1 {
				add(attrPath(name, "numOfCores"), "expected a positive integer, got %s", describe(v))
			}
		}
		for _, c := range sortedKeys(t.Containers) {
			if c == "" {
				add(attrPath(name, "containers", c), "a container has an empty name")
			}
		}
	}
	return joinSorted(errs)
}

// Validate checks a distribution against the services and infrastructure
// models (either may be nil to skip those checks): every service known and
// every target known, no empty target name, no mapping repeated for one
// service. All problems are returned joined, sorted.
func (d Distribution) Validate(file string, services Services, infra Infrastructure) error {
	var errs []error
	add := func(place, format string, args ...any) {
		errs = append(errs, errAt(file, place, format, args...))
	}
	var targetNames []string
	if infra != nil {
		targetNames = infra.Names()
	}
	for _, svc := range d.Names() {
		if services != nil {
			if _, ok := services[svc]; !ok {
				add(attrPath(svc), "unknown service %q: it is not in the services model%s", svc, suggest(svc, services.Names()))
			}
		}
		seen := map[Mapping]int{}
		for i, m := range d[svc] {
			p := fmt.Sprintf("%s[%d]", attrPath(svc), i)
			switch {
			case m.Target == "":
				add(p, "expected a target name, got an empty string")
				continue
			case infra != nil && infra[m.Target] == nil:
				add(p, "unknown target %q: it is not in the infrastructure model%s", m.Target, suggest(m.Target, targetNames))
			}
			key := Mapping{Target: m.Target, Container: m.Container}
			if j, dup := seen[key]; dup {
				add(p, "target %q is mapped twice (also at index %d)", m.Target, j)
			} else {
				seen[key] = i
			}
		}
	}
	return joinSorted(errs)
}

func describe(v any) string {
	if s, ok := ScalarText(v); ok {
		return fmt.Sprintf("%s %s", TypeName(v), s)
	}
	return TypeName(v)
}

// attrPath joins attribute names into a Nix-style attribute path, quoting
// names that are not identifiers (a."b c".d).
func attrPath(elems ...string) string {
	parts := make([]string, len(elems))
	for i, e := range elems {
		if IsNixIdent(e) {
			parts[i] = e
		} else {
			parts[i] = strconvQuote(e)
		}
	}
	return strings.Join(parts, ".")
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconvQuote(s)
	}
	return out
}

// suggest returns ` (did you mean "x"?)` for the closest candidate by edit
// distance, when one is close enough.
func suggest(name string, candidates []string) string {
	if len(candidates) > 10000 {
		return ""
	}
	best, bestDist := "", len(name)/2+2
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
