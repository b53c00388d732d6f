package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFakeDisnixForwardsOptions runs dydisnix-env --deployer disnix with a
// FAKE disnix-env on PATH (Disnix cannot run here) that records its command
// line, and checks that the Disnix-only flags reach it.
func TestFakeDisnixForwardsOptions(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	argv := filepath.Join(dir, "argv")
	write(t, bin, "disnix-env", "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > "+argv+"\n")
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	svc := write(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution}: { a = { name = "a"; type = "process"; }; }`)
	infra := write(t, dir, "infra.json", `{"t1": {"properties": {"hostname": "t1"}}}`)
	qos := write(t, dir, "qos.yaml", "steps: []\n")
	var out, errb bytes.Buffer
	code := run([]string{"-s", svc, "-i", infra, "-q", qos, "--deployer", "disnix",
		"--profile", "web", "--coordinator-profile-path", filepath.Join(dir, "coord"),
		"--depth-first", "--build-on-targets", "--show-trace", "--no-migration", "--keep", "2", "-m", "3",
		"--state-dir", filepath.Join(dir, "st")}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	data, err := os.ReadFile(argv)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(data))
	for _, want := range []string{"--profile", "web", "--coordinator-profile-path", "--depth-first",
		"--build-on-targets", "--show-trace", "--no-migration", "--keep", "2", "3"} {
		found := false
		for _, g := range got {
			if g == want {
				found = true
			}
		}
		if !found {
			t.Errorf("disnix-env was called without %q: %v", want, got)
		}
	}
}
