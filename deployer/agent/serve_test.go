package agent

import (
	"context"
	"errors"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// serving starts Serve on a loopback port with one running process
// service; it returns the client, the process's pid and Serve's result.
func serving(t *testing.T, cfg ServeConfig) (*Agent, *agentapi.Client, int, <-chan error) {
	t.Helper()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), a, cfg) }()
	c := agentapi.NewClient("http://"+ln.Addr().String(), "tok", nil)
	req := agentapi.ActivateRequest{Key: "sleeper", Target: "t1", Container: "process",
		Service: model.ManifestService{Name: "sleeper", Type: "process", Args: []string{"sleep", "1000"}}}
	if err := c.Activate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	prof, err := c.Profile(context.Background())
	if err != nil || len(prof.Services) != 1 {
		t.Fatalf("profile %+v %v", prof, err)
	}
	return a, c, prof.Services[0].Pid, done
}

// TestServeDrainAndSecondSignal: the first signal withdraws the
// announcement (Serve waits for its goodbye) and drains; a second signal
// ends the drain at once, stopping the processes; then Serve returns nil.
func TestServeDrainAndSecondSignal(t *testing.T) {
	t.Parallel()
	sigs := make(chan os.Signal, 2)
	goodbye := make(chan struct{})
	withdrawn := make(chan struct{})
	var states []string
	a, c, pid, done := serving(t, ServeConfig{Signals: sigs, DrainTimeout: time.Hour,
		Notify: func(s string) { states = append(states, s) },
		Announce: func(ctx context.Context) error {
			<-ctx.Done()
			close(withdrawn)
			<-goodbye
			return ctx.Err()
		}})
	sigs <- syscall.SIGTERM
	<-withdrawn
	if h, err := c.Health(context.Background()); err != nil || h.Draining {
		t.Errorf("draining before the goodbye was sent: %+v %v", h, err)
	}
	close(goodbye)
	testenv.Eventually(t, time.Minute, func() bool { return a.Health().Draining }, "the drain")
	if !alive(pid) {
		t.Fatal("the service stopped before the drain ended")
	}
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if alive(pid) {
		t.Errorf("process %d still runs after Serve returned", pid)
	}
	if strings.Join(states, ",") != "READY=1,STOPPING=1" {
		t.Errorf("service manager states %v", states)
	}
}

// TestServeAnnouncementFailureHandsOver: when the announcement fails the
// agent stops with its error, leaving its processes running (recorded)
// for the next agent to adopt.
func TestServeAnnouncementFailureHandsOver(t *testing.T) {
	t.Parallel()
	boom := errors.New("no multicast here")
	fail := make(chan struct{})
	_, _, pid, done := serving(t, ServeConfig{Announce: func(ctx context.Context) error {
		select {
		case <-fail:
			return boom
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	close(fail) // the activation is in: now the announcement fails
	if err := <-done; !errors.Is(err, boom) || !strings.Contains(err.Error(), "announcement") {
		t.Fatalf("Serve: %v, want the announcement's error", err)
	}
	if !alive(pid) {
		t.Error("the service was stopped: it should be handed over to the next agent")
	}
}

// TestCloseStopsAnActivationInFlight: a process whose activation is still
// waiting for its health check when the agent stops is stopped too (Close
// used to miss it: it was not in the profile yet, and outlived the agent).
func TestCloseStopsAnActivationInFlight(t *testing.T) {
	t.Parallel()
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	req := agentapi.ActivateRequest{Key: "slow", Service: model.ManifestService{Name: "slow", Type: "process",
		Args: []string{"sleep", "1000"}, HealthCheck: "tcp://127.0.0.1:1"}} // never passes
	activated := make(chan error, 1)
	go func() { activated <- a.Activate(context.Background(), req) }()
	var pid int
	testenv.Eventually(t, time.Minute, func() bool { pid = findProcess(a.path("run", "slow.json")); return pid > 0 }, "the process to start")
	a.Close(true)
	if alive(pid) {
		syscall.Kill(-pid, syscall.SIGKILL)
		t.Fatalf("process %d of an activation in flight outlived Close(true)", pid)
	}
	if err := <-activated; err == nil {
		t.Error("the activation succeeded although the agent stopped")
	}
	if n := len(a.Profile(context.Background()).Services); n != 0 {
		t.Errorf("profile has %d services after the activation was given up", n)
	}
}
