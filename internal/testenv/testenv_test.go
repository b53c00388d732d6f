package testenv

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMissingFailsWhenRequired runs this test binary again with the
// variable set and checks that a missing command fails the test.
func TestMissingFailsWhenRequired(t *testing.T) {
	{
		cmd := exec.Command(testBinary(t), "-test.run", "^TestHelperMissing$")
		cmd.Env = append(cmd.Environ(), RequireAllEnv+"=1", "DYDISNIX_TESTENV_HELPER=1")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("a missing command passed with %s set:\n%s", RequireAllEnv, out)
		}
		cmd = exec.Command(testBinary(t), "-test.run", "^TestHelperMissing$", "-test.v")
		cmd.Env = append(cmd.Environ(), RequireAllEnv+"=", "DYDISNIX_TESTENV_HELPER=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("a missing command failed without %s:\n%s", RequireAllEnv, out)
		}
	}
}

func TestHelperMissing(t *testing.T) {
	if !helper() {
		t.Skip("run by TestMissingFailsWhenRequired")
	}
	NeedCommand(t, "dydisnix-no-such-command")
}

func TestWriteExecutable(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "tool")
	WriteExecutable(t, p, "#!/bin/sh\necho ran\n")
	out, err := exec.Command(p).Output()
	if err != nil || string(out) != "ran\n" {
		t.Fatalf("run: %q %v", out, err)
	}
}
