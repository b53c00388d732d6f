package clitest

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/model"
)

// AgentToken is the bearer token of the agents StartAgent runs.
const AgentToken = "tok"

// StartAgent runs a deployment agent with its state in dir/agent on a free
// local port until the test ends. It returns the agent's URL and a token
// file (dir/token) for --agent-token-file.
func StartAgent(t *testing.T, dir string) (url, tokenFile string) {
	t.Helper()
	a, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte(AgentToken)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Close(true)
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	return "http://" + ln.Addr().String(), WriteFile(t, dir, "token", AgentToken)
}

// Deploy deploys svcs as dist places them on the agents of infra (run by
// StartAgent), keeping the coordinator's state in stateDir, and returns
// the manifest deployed.
func Deploy(t *testing.T, stateDir string, svcs model.Services, infra model.Infrastructure, dist model.Distribution) *model.Manifest {
	t.Helper()
	man, err := deployer.BuildManifest(svcs, infra, dist, deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := deployer.OpenStore(stateDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := deployer.PlanTransition(nil, man, deployer.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deployer.Deploy(context.Background(), &deployer.AgentBackend{Token: AgentToken, TLS: &deployer.AgentTLS{InsecureHTTP: true}}, store, plan, nil); err != nil {
		t.Fatal(err)
	}
	return man
}
