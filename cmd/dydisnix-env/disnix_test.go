package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
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

// TestDeployerDefault checks the deployer chosen when --deployer is not
// given: the original's command line (no agent credentials) deploys with
// Disnix when disnix-env (a FAKE here: Disnix cannot run here) is installed,
// and with the agents when their credentials are given or Disnix is absent.
func TestDeployerDefault(t *testing.T) {
	for _, tc := range []struct {
		name       string
		disnix     bool
		extra      []string
		wantCode   int
		wantDisnix bool
		wantErr    string
	}{
		{name: "disnix installed, no credentials", disnix: true, wantCode: 0, wantDisnix: true},
		{name: "disnix installed, agent credentials", disnix: true, extra: []string{"--agent-token-file", "tok"},
			wantCode: 2, wantErr: "--agent-ca-file is required"},
		{name: "no disnix, no credentials", wantCode: 2, wantErr: "--agent-token-file is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			argv := filepath.Join(dir, "argv")
			if tc.disnix {
				write(t, bin, "disnix-env", "#!/bin/sh\necho \"$@\" > "+argv+"\n")
			}
			nix, err := exec.LookPath("nix-instantiate")
			if err != nil {
				testenv.Missing(t, "nix-instantiate is not installed (.ci/run installs it)")
			}
			t.Setenv("PATH", bin+string(os.PathListSeparator)+filepath.Dir(nix)) // no other disnix-env
			svc := write(t, dir, "services.nix", `{system, pkgs, distribution, invDistribution}: { a = { name = "a"; type = "process"; }; }`)
			infra := write(t, dir, "infra.json", `{"t1": {"properties": {"hostname": "t1"}}}`)
			qos := write(t, dir, "qos.yaml", "steps: []\n")
			args := append([]string{"-s", svc, "-i", infra, "-q", qos, "--state-dir", filepath.Join(dir, "st")}, tc.extra...)
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			if code != tc.wantCode || !strings.Contains(errb.String(), tc.wantErr) {
				t.Fatalf("exit %d, want %d with %q; stderr: %s", code, tc.wantCode, tc.wantErr, errb.String())
			}
			if _, err := os.Stat(argv); (err == nil) != tc.wantDisnix {
				t.Fatalf("disnix-env called: %v, want %v", err == nil, tc.wantDisnix)
			}
		})
	}
}
