package clitest

import (
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/deployer/agent"
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
