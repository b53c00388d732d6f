package main

import (
	"bytes"
	"context"
	"fmt"
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

func TestReconstructInstallsGeneration(t *testing.T) {
	dir := t.TempDir()
	a, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: a.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	infraFile := filepath.Join(dir, "infra.json")
	os.WriteFile(infraFile, []byte(fmt.Sprintf(`{"t1": {"properties": {"agentURL": "http://%s"}}, "gone": {"properties": {"agentURL": "http://127.0.0.1:1"}}}`, ln.Addr())), 0o644)
	infra, _ := model.LoadInfrastructure(infraFile)
	svcs := model.Services{"x": {Name: "x", Type: "echo", Attrs: map[string]any{}}}
	man, _ := deployer.BuildManifest(svcs, infra, model.Distribution{"x": {{Target: "t1"}}}, deployer.BuildOptions{})
	plan, _ := deployer.PlanTransition(nil, man, deployer.PlanOptions{NoLock: true})
	if err := (&deployer.AgentBackend{Token: "tok"}).Execute(context.Background(), plan, nil); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("tok"), 0o600)
	st := filepath.Join(dir, "st")
	var out, errb bytes.Buffer
	if code := run([]string{"-i", infraFile, "--agent-token-file", tok, "--state-dir", st, "--timeout", "2s"}, &out, &errb); code != 0 {
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
	if code := run([]string{"-i", infraFile, "--agent-token-file", tok, "--state-dir", st, "--timeout", "2s"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "unchanged") {
		t.Errorf("second run: %d %s", code, errb.String())
	}
	if code := run([]string{"--agent-token-file", tok}, &out, &errb); code != 2 {
		t.Errorf("missing -i: %d", code)
	}
}
