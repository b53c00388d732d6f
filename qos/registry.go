package qos

import (
	"fmt"
	"sort"
	"sync"
)

// Params are a step's own parameters from the policy file (everything but
// "filter" and "name"), as JSON-like values.
type Params map[string]any

// Factory builds a filter from its parameters. It must reject unknown or
// ill-typed parameters with an error naming them.
type Factory func(p Params) (Filter, error)

// Spec describes a registered filter.
type Spec struct {
	Name   string
	Params []string // the parameters it accepts, for error messages and help
	New    Factory
	Doc    string // one line for help output
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Spec{}
)

// Register adds a filter to the catalog. Users register their own filters
// the same way (the Go equivalent of the original's -F catalog). It panics
// on a duplicate name, which is a programming error.
func Register(s Spec) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[s.Name]; dup {
		panic(fmt.Sprintf("qos: filter %q registered twice", s.Name))
	}
	registry[s.Name] = s
}

// Lookup returns a registered filter.
func Lookup(name string) (Spec, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s, ok := registry[name]
	return s, ok
}

// FilterNames returns the registered filter names, sorted.
func FilterNames() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
