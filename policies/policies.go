// Package policies gives access to the QoS policies shipped with dydisnix
// (qos/builtin/*.yaml, embedded in the binaries). qos.DefaultRegistry
// already understands "builtin:NAME" (for example "-q
// builtin:by-type-round-robin"); this package lists and loads them by name.
package policies

import (
	"github.com/dydisnix/dydisnix/qos"
)

// Names returns the names of the shipped QoS policies, sorted.
func Names() []string { return qos.BuiltinPolicyNames() }

// Load parses a shipped policy with the default registry.
func Load(name string) (*qos.Policy, error) {
	return qos.DefaultRegistry().LoadPolicy("builtin:" + name)
}
