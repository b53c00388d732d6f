package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/model"
)

func TestSnapshotIntoStore(t *testing.T) {
	dir := t.TempDir()
	a, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: a.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": "http://" + ln.Addr().String()}, Extra: map[string]any{}}}
	svcs := model.Services{"db": {Name: "db", Type: "echo", Attrs: map[string]any{"deployState": true}}}
	man, err := deployer.BuildManifest(svcs, infra, model.Distribution{"db": {{Target: "t1"}}}, deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "st")
	store, _ := deployer.OpenStore(st, 3)
	plan, _ := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if _, err := deployer.Deploy(context.Background(), &deployer.AgentBackend{Token: "tok"}, store, plan, nil); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "agent", "state", "db"), 0o700)
	os.WriteFile(filepath.Join(dir, "agent", "state", "db", "data"), []byte("rows"), 0o600)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("tok"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"--agent-token-file", tok, "--state-dir", st}, &out, &errb); code != 0 {
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
	if code := run([]string{"--agent-token-file", tok, "--state-dir", filepath.Join(dir, "empty")}, &out, &errb); code != 1 {
		t.Errorf("empty state dir: %d", code)
	}
}
