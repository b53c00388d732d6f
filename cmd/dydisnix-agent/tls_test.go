package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// startBinary builds and starts the agent with args (besides --listen,
// --state-dir and --token-file with token "secret") and returns its
// address.
func startBinary(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "dydisnix-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("secret"), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append([]string{"--listen", addr, "--state-dir", filepath.Join(dir, "state"), "--token-file", tok,
		"--drain-timeout", "1s"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return addr
}

// TestAgentMutualTLS (issue 11): the agent serves only a coordinator
// certificate of its fleet CA; a client without one is refused even with
// the right bearer token, and so is an agent's own certificate or a
// coordinator certificate of another CA.
func TestAgentMutualTLS(t *testing.T) {
	fleet := testenv.NewFleet(t, "machine1")
	other := testenv.NewFleet(t)
	addr := startBinary(t, fleet.AgentArgs("machine1")...)
	target := &model.Target{Name: "machine1", Properties: map[string]any{"hostname": "machine1"}}
	client := func(cert, key string) *agentapi.Client {
		cfg, err := fleettls.ClientConfig(fleet.CA(), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		hc, err := (&deployer.AgentTLS{Config: cfg}).Client(target, "https://"+addr)
		if err != nil {
			t.Fatal(err)
		}
		return agentapi.NewClient("https://"+addr, "secret", hc)
	}
	coord := fleet.CoordinatorArgs()
	var h *agentapi.Health
	testenv.Eventually(t, 10*time.Second, func() bool {
		var err error
		h, err = client(coord[3], coord[5]).Health(context.Background())
		return err == nil
	}, "the agent never answered a coordinator over mutual TLS")
	if h.Status != "ok" {
		t.Fatalf("health: %+v", h)
	}
	if _, err := client(coord[3], coord[5]).Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	agentArgs := fleet.AgentArgs("machine1")
	otherCoord := other.CoordinatorArgs()
	for name, c := range map[string]*agentapi.Client{
		"no client certificate":                client("", ""),
		"an agent's certificate":               client(agentArgs[1], agentArgs[3]),
		"another CA's coordinator certificate": client(otherCoord[3], otherCoord[5]),
	} {
		if _, err := c.Health(context.Background()); err == nil {
			t.Errorf("%s with the right token: served", name)
		}
	}
	// Not the coordinator's trust either: a client that trusts anything
	// and sends the token gets nothing without a coordinator certificate.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	req, _ := http.NewRequest("GET", "https://"+addr+"/v1/health", nil)
	req.Header.Set("Authorization", "Bearer secret")
	if resp, err := (&http.Client{Transport: tr}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a client without certificate got %s", resp.Status)
	}
}

// TestAgentPlainHTTPOnlyWhenAsked (issue 11): without certificates the
// agent refuses to start and says how to create them; with --insecure-http
// it serves plain HTTP, which a coordinator uses only with --insecure-http
// too.
func TestAgentPlainHTTPOnlyWhenAsked(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--state-dir", t.TempDir(), "--token-file", "t"}, &bytes.Buffer{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "dydisnix-tls") || !strings.Contains(stderr.String(), "--insecure-http") {
		t.Fatalf("agent without TLS: exit %d, %s", code, stderr.String())
	}
	addr := startBinary(t, "--insecure-http")
	target := &model.Target{Name: "machine1"}
	if _, err := (&deployer.AgentTLS{}).Client(target, "http://"+addr); err == nil || !strings.Contains(err.Error(), "machine1") {
		t.Fatalf("coordinator without --insecure-http: %v, want a refusal naming the target", err)
	}
	hc, err := (&deployer.AgentTLS{InsecureHTTP: true}).Client(target, "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	c := agentapi.NewClient("http://"+addr, "secret", hc)
	testenv.Eventually(t, 10*time.Second, func() bool { _, err := c.Health(context.Background()); return err == nil },
		"the --insecure-http agent never answered over plain HTTP")
}
