// Package policies holds the QoS policies shipped with dydisnix, embedded in
// the binaries. Importing it makes qos.LoadPolicy understand
// "builtin:NAME" (for example "-q builtin:by-type-round-robin").
package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/dydisnix/dydisnix/qos"
)

//go:embed qos/*.yaml
var files embed.FS

func init() {
	qos.RegisterPolicySource("builtin", func(name string) ([]byte, string, error) {
		data, err := Source(name)
		if err != nil {
			return nil, "", err
		}
		return data, "builtin:" + name + ".yaml", nil
	})
}

// Names returns the names of the shipped QoS policies, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, "qos")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Source returns the YAML text of a shipped policy.
func Source(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("builtin:%s: not a policy name; shipped policies: %s", name, strings.Join(Names(), ", "))
	}
	data, err := files.ReadFile(path.Join("qos", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("builtin:%s: no such shipped policy; shipped policies: %s", name, strings.Join(Names(), ", "))
	}
	return data, nil
}

// Load parses a shipped policy.
func Load(name string) (*qos.Policy, error) {
	return qos.LoadPolicy("builtin:" + name)
}
