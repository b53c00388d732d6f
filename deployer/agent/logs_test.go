package agent

import (
	"bytes"
	"context"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

func TestRotateLog(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "svc.log")
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			return "<none>"
		}
		return string(b)
	}
	steps := []struct {
		write   string
		rotated bool
		cur     string
		one     string
		two     string
	}{
		{"12345", false, "12345", "<none>", "<none>"}, // at max: kept
		{"6", true, "", "123456", "<none>"},
		{"abcdefg", true, "", "abcdefg", "123456"},
		{"hijklmn", true, "", "hijklmn", "abcdefg"}, // keep 2: the oldest is gone
		{"x", false, "x", "hijklmn", "abcdefg"},
	}
	for i, s := range steps {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s.write)
		f.Close()
		rotated, err := rotateLog(file, 5, 2)
		if err != nil || rotated != s.rotated {
			t.Fatalf("step %d: rotated %v, %v; want %v", i, rotated, err, s.rotated)
		}
		if got := [3]string{read(file), read(file + ".1"), read(file + ".2")}; got != [3]string{s.cur, s.one, s.two} {
			t.Errorf("step %d: files %q, want %q", i, got, [3]string{s.cur, s.one, s.two})
		}
		if _, err := os.Stat(file + ".3"); err == nil {
			t.Errorf("step %d: more than 2 copies kept", i)
		}
	}
}

func TestLastLines(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"", 5, ""},
		{"\n\n", 1, "\n"},
	} {
		if got := string(lastLines([]byte(c.in), c.n)); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// get does an authenticated (or not) GET on the agent.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServiceLogsExitsAndMetrics: the output of a service is served
// (authenticated, bounded tail), a crash is logged at WARN with the exit
// status and the restart count, and /metrics counts it.
func TestServiceLogsExitsAndMetrics(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	a, err := New(Config{StateDir: t.TempDir(), Token: []byte("s3cr3t-value"), Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close(true) })
	c := agentapi.NewClient(srv.URL, "s3cr3t-value", nil)
	ctx := context.Background()
	req := agentapi.ActivateRequest{Key: "talker", Target: "t1", Container: "process",
		Service: model.ManifestService{Name: "talker", Type: "process", Args: []string{"sh", "-c", `printf 'one\ntwo\nthree\n'; exec sleep 1000`}}}
	if err := c.Activate(ctx, req); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	testenv.Eventually(t, time.Minute, func() bool {
		b.Reset()
		return c.Logs(ctx, "talker", 2, &b) == nil && b.String() == "two\nthree\n"
	}, "the last two lines of the service's output")
	for _, bad := range []struct {
		path string
		code int
	}{
		{"/v1/logs/talker?tail=0", 400},
		{"/v1/logs/talker?tail=abc", 400},
		{fmt.Sprintf("/v1/logs/talker?tail=%d", MaxLogTail+1), 400},
		{"/v1/logs/nobody", 404},
		{"/v1/logs/.hidden", 400},
	} {
		if code, body := get(t, srv.URL+bad.path, "s3cr3t-value"); code != bad.code {
			t.Errorf("GET %s: %d %s, want %d", bad.path, code, body, bad.code)
		}
	}
	for _, p := range []string{"/v1/logs/talker", "/metrics"} {
		if code, _ := get(t, srv.URL+p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", p, code)
		}
	}

	prof, _ := c.Profile(ctx)
	pid := prof.Services[0].Pid
	syscall.Kill(pid, syscall.SIGKILL)
	testenv.Eventually(t, time.Minute, func() bool { return logs.FilterMessage("restarting service").Len() > 0 }, "the restart to be logged")
	exit := logs.FilterMessage("service exited").All()
	if len(exit) != 1 || exit[0].Level != zapcore.WarnLevel {
		t.Fatalf("exit log %+v", exit)
	}
	f := exit[0].ContextMap()
	if f["service"] != "talker" || f["pid"] != int64(pid) || f["exitStatus"] != "signal: killed" || f["restarts"] != int64(0) {
		t.Errorf("exit log fields %v", f)
	}
	restart := logs.FilterMessage("restarting service").All()[0]
	if restart.Level != zapcore.WarnLevel || restart.ContextMap()["restarts"] != int64(1) {
		t.Errorf("restart log %v %v", restart.Level, restart.ContextMap())
	}
	testenv.Eventually(t, time.Minute, func() bool { return a.Health().Running == 1 }, "the restarted service")
	_, body := get(t, srv.URL+"/metrics", "s3cr3t-value")
	for _, want := range []string{
		`dydisnix_agent_service_restarts_total{service="talker"} 1`,
		`dydisnix_agent_service_exits_total{service="talker"} 1`,
		`dydisnix_agent_services_running 1`,
		`dydisnix_agent_activations_total{result="success"} 1`,
		`dydisnix_agent_locked 0`,
		`dydisnix_agent_requests_total{code="401",route="unauthorized"} 2`,
		`dydisnix_agent_requests_total{code="200",route="POST /v1/activate"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "s3cr3t") {
		t.Errorf("/metrics shows the token")
	}
}
