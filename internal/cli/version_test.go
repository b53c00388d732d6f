package cli

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	t.Parallel()
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}},
			"dydisnix-x v1.2.0 go1.26.8"},
		{"checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: setting("vcs.revision", "4463815a9b2c77e0d5f3a1b2c3d4e5f607182930", "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true")},
			"dydisnix-x (devel) revision 4463815a9b2c (modified) 2026-12-01T10:00:00Z go1.26.8"},
		{"clean checkout", debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: setting("vcs.revision", "abc", "vcs.modified", "false")},
			"dydisnix-x (devel) revision abc"},
		{"no module version", debug.BuildInfo{}, "dydisnix-x (devel)"},
	} {
		if got := versionLine("dydisnix-x", &tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if v := Version("dydisnix-x"); !strings.HasPrefix(v, "dydisnix-x ") {
		t.Errorf("Version = %q", v)
	}
}
