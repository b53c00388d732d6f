package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/cli/clitest"
	"github.com/dydisnix/dydisnix/model"
)

func TestSnapshotIntoStore(t *testing.T) {
	dir := t.TempDir()
	url, tok := clitest.StartAgent(t, dir)
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": url}, Extra: map[string]any{}}}
	svcs := model.Services{"db": {Name: "db", Type: "echo", Attrs: map[string]any{"deployState": true}}}
	st := filepath.Join(dir, "st")
	clitest.Deploy(t, st, svcs, infra, model.Distribution{"db": {{Target: "t1"}}})
	store, err := deployer.OpenStore(st, 3)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "agent", "state", "db"), 0o700)
	os.WriteFile(filepath.Join(dir, "agent", "state", "db", "data"), []byte("rows"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"--agent-token-file", tok, "--insecure-http", "--state-dir", st}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "db sha256:") {
		t.Errorf("output %q", out.String())
	}
	info, ok, err := store.LatestSnapshot("db")
	if err != nil || !ok || info.Generation != 1 {
		t.Fatalf("store: %+v %v %v", info, ok, err)
	}
	// Usage errors exit 2; no deployment exits 1.
	if code := run([]string{}, &out, &errb); code != 2 {
		t.Errorf("no token: %d", code)
	}
	if code := run([]string{"--agent-token-file", tok, "--insecure-http", "--state-dir", filepath.Join(dir, "empty")}, &out, &errb); code != 1 {
		t.Errorf("empty state dir: %d", code)
	}
}
