// Package testenv decides what a test does when something it needs from the
// machine (root, network namespaces, nix-instantiate, Avahi) is missing: it
// skips with the reason on a developer's machine, and fails in CI, where
// .ci/run sets DYDISNIX_REQUIRE_ALL=1 after installing everything, so a
// missing package can never turn a real test into a silent skip.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireAllEnv names the environment variable that turns skips into failures.
const RequireAllEnv = "DYDISNIX_REQUIRE_ALL"

// Missing skips (or, with DYDISNIX_REQUIRE_ALL set, fails) the test because
// something it needs is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireAllEnv) != "" {
		t.Fatalf("required by CI ("+RequireAllEnv+" is set): "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// NeedCommand calls Missing unless every named command is on PATH.
func NeedCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, "%s is not installed (.ci/run installs it)", n)
		}
	}
}
