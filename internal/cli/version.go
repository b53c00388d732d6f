package cli

import (
	"runtime/debug"
	"strings"
)

// Version is the line --version prints: the command's name, the module's
// version ("(devel)" when built from a checkout) and, when the build
// recorded them, the VCS revision (and "modified" for a build from a
// changed tree) and the Go version it was built with.
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (unknown version: built without module information)"
	}
	return versionLine(name, bi)
}

func versionLine(name string, bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{name, v}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "revision "+rev)
		if settings["vcs.modified"] == "true" {
			parts[len(parts)-1] += " (modified)"
		}
		if t := settings["vcs.time"]; t != "" {
			parts = append(parts, t)
		}
	}
	if bi.GoVersion != "" {
		parts = append(parts, bi.GoVersion)
	}
	return strings.Join(parts, " ")
}
