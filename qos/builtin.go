package qos

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The shipped policies: qos/builtin/NAME.yaml, embedded in every binary and
// reachable as "builtin:NAME" through DefaultRegistry.
//
//go:embed builtin/*.yaml
var builtinFiles embed.FS

// BuiltinPolicyNames returns the names of the shipped policies, sorted.
func BuiltinPolicyNames() []string {
	entries, _ := fs.ReadDir(builtinFiles, "builtin")
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// BuiltinPolicy returns the YAML text of a shipped policy.
func BuiltinPolicy(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("builtin:%s: not a policy name; shipped policies: %s", name, strings.Join(BuiltinPolicyNames(), ", "))
	}
	data, err := builtinFiles.ReadFile(path.Join("builtin", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("builtin:%s: no such shipped policy; shipped policies: %s", name, strings.Join(BuiltinPolicyNames(), ", "))
	}
	return data, nil
}

// builtinPolicySource is the "builtin" PolicySource of DefaultRegistry.
func builtinPolicySource(name string) ([]byte, string, error) {
	data, err := BuiltinPolicy(name)
	if err != nil {
		return nil, "", err
	}
	return data, "builtin:" + name + ".yaml", nil
}
