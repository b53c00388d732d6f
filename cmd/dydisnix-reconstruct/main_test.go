package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/cli/clitest"
	"github.com/dydisnix/dydisnix/model"
)

func TestReconstructInstallsGeneration(t *testing.T) {
	dir := t.TempDir()
	url, tok := clitest.StartAgent(t, dir)
	infraFile := clitest.WriteFile(t, dir, "infra.json", fmt.Sprintf(`{"t1": {"properties": {"agentURL": %q}}, "gone": {"properties": {"agentURL": "http://127.0.0.1:1"}}}`, url))
	infra, err := model.LoadInfrastructure(infraFile)
	if err != nil {
		t.Fatal(err)
	}
	svcs := model.Services{"x": {Name: "x", Type: "echo", Attrs: map[string]any{}}}
	// Deployed by another coordinator, whose state is lost.
	man := clitest.Deploy(t, filepath.Join(dir, "lost"), svcs, infra, model.Distribution{"x": {{Target: "t1"}}})
	st := filepath.Join(dir, "st")
	var out, errb bytes.Buffer
	if code := run([]string{"-i", infraFile, "--agent-token-file", tok, "--insecure-http", "--state-dir", st, "--timeout", "2s"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "target gone skipped") || !strings.Contains(errb.String(), "installed as generation 1") {
		t.Errorf("stderr: %s", errb.String())
	}
	store, _ := deployer.OpenStore(st, 0)
	got, err := store.Latest()
	if err != nil || got == nil || len(got.Mappings) != 1 || got.Mappings[0].Service != man.Mappings[0].Service {
		t.Fatalf("installed manifest: %+v %v", got, err)
	}
	errb.Reset()
	if code := run([]string{"-i", infraFile, "--agent-token-file", tok, "--insecure-http", "--state-dir", st, "--timeout", "2s"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "unchanged") {
		t.Errorf("second run: %d %s", code, errb.String())
	}
	if code := run([]string{"--agent-token-file", tok}, &out, &errb); code != 2 {
		t.Errorf("missing -i: %d", code)
	}
}
