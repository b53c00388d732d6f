package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

// oneSnapshot reports one infrastructure, then waits.
type oneSnapshot model.Infrastructure

func (s oneSnapshot) Run(ctx context.Context, out chan<- discovery.Snapshot) error {
	select {
	case out <- discovery.Snapshot{Infrastructure: model.Infrastructure(s)}:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return ctx.Err()
}

// firstTarget is a pass that places the one service "web" on the first
// usable target, keeping it where it ran when that target is cordoned.
type firstTarget struct{ on string }

func (p *firstTarget) Load(context.Context) (string, error) { return "models", nil }
func (p *firstTarget) Augment(_ context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	return infra.Clone(), nil
}
func (p *firstTarget) Apply(_ context.Context, infra model.Infrastructure, req rollout.Request) (*rollout.Result, error) {
	names := infra.Names()
	if !slices.Contains(req.Cordon, p.on) || infra[p.on] == nil {
		names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(req.Cordon, n) })
		p.on = names[0]
	}
	d := model.Distribution{"web": {{Target: p.on}}}
	return &rollout.Result{Desired: &rollout.Desired{Distribution: d}, Plan: []string{"1. activate web on " + p.on}}, nil
}

// runCtl runs dydisnix-ctl and returns its exit status and output.
func runCtl(args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestCtlAgainstARunningLoop runs dydisnix-ctl against adapt.Serve (a fake
// pass, a real agent for the logs) over the loop's control socket.
func TestCtlAgainstARunningLoop(t *testing.T) {
	dir := t.TempDir()
	ag, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte("tok")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ag.Handler())
	defer func() { srv.Close(); ag.Close(true) }()
	// what web wrote on this target (the agent serves logs/web.log)
	os.WriteFile(filepath.Join(dir, "agent", "logs", "web.log"), []byte("one\ntwo\nthree\n"), 0o600)
	tokFile := filepath.Join(dir, "agent.token")
	os.WriteFile(tokFile, []byte("tok\n"), 0o600)
	infra := model.Infrastructure{}
	for _, n := range []string{"a", "b"} {
		infra[n] = &model.Target{Name: n, Properties: map[string]any{"agentURL": srv.URL}}
	}

	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	reports := make(chan adapt.DeployReport, 10)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- adapt.Serve(ctx, adapt.Config{Source: oneSnapshot(infra), Pass: &firstTarget{},
			Timing:        adapt.Timing{InitialSettle: time.Millisecond, Debounce: time.Millisecond, Resync: time.Hour},
			ControlSocket: filepath.Join(state, adapt.ControlSocketName),
			OnDeploy:      func(r adapt.DeployReport) { reports <- r }}, "")
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	deployed := func(what string) adapt.DeployReport {
		t.Helper()
		select {
		case r := <-reports:
			if r.Result != "success" {
				t.Fatalf("%s: %+v", what, r)
			}
			return r
		case <-time.After(time.Minute):
			t.Fatalf("%s: no deploy", what)
		}
		return adapt.DeployReport{}
	}
	deployed("first deploy")
	st := "--state-dir=" + state

	if fi, err := os.Stat(filepath.Join(state, adapt.ControlSocketName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v, want mode 0600", fi, err)
	}
	code, out, errs := runCtl(st, "status")
	if code != 0 || !strings.Contains(out, "phase:") || !strings.Contains(out, "web") || !strings.Contains(out, "idle") {
		t.Fatalf("status: %d %q %q", code, out, errs)
	}
	jsonStatus := func() adapt.Status {
		t.Helper()
		code, out, errs := runCtl(st, "status", "-o", "json")
		var s adapt.Status
		if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
			t.Fatalf("status -o json: %d %q %q", code, out, errs)
		}
		return s
	}
	if s := jsonStatus(); s.Distribution.Targets("web")[0] != "a" {
		t.Fatalf("status -o json: %+v", s.Distribution)
	}

	// logs: from the agent of the target running the service
	if code, out, errs := runCtl(st, "logs", "web", "--tail", "2", "--agent-token-file", tokFile, "--insecure-http"); code != 0 || out != "two\nthree\n" {
		t.Fatalf("logs: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCtl(st, "logs", "db", "--agent-token-file", tokFile, "--insecure-http"); code != 1 || !strings.Contains(errs, `service "db" is not deployed`) {
		t.Errorf("logs of an unknown service: %d %q", code, errs)
	}

	// drain: web moves away from a
	if code, out, errs := runCtl(st, "drain", "a"); code != 0 || out != "drain a: accepted\n" {
		t.Fatalf("drain: %d %q %q", code, out, errs)
	}
	if r := deployed("after drain"); strings.Join(r.Targets, ",") != "b" || r.Distribution.Targets("web")[0] != "b" {
		t.Fatalf("after drain: %+v", r)
	}
	if s := jsonStatus(); !s.Targets[0].Drained || s.Targets[0].Target != "a" {
		t.Errorf("status after drain: %+v", s.Targets)
	}
	// pause: no redeploy until resume
	if code, _, errs := runCtl(st, "pause"); code != 0 {
		t.Fatalf("pause: %q", errs)
	}
	if s := jsonStatus(); s.Phase != "paused" {
		t.Errorf("phase %q after pause", s.Phase)
	}
	if code, _, errs := runCtl(st, "redeploy"); code != 1 || !strings.Contains(errs, "paused") {
		t.Errorf("redeploy while paused: %d %q", code, errs)
	}
	if code, _, errs := runCtl(st, "resume"); code != 0 {
		t.Fatalf("resume: %q", errs)
	}
	if code, _, errs := runCtl(st, "redeploy"); code != 0 {
		t.Fatalf("redeploy: %q", errs)
	}
	if r := deployed("redeploy"); !slices.Contains(r.Causes, "redeploy asked by the operator") {
		t.Errorf("redeploy causes %v", r.Causes)
	}
	// cordon b, uncordon a: web stays on cordoned b
	if code, _, errs := runCtl(st, "cordon", "b"); code != 0 {
		t.Fatalf("cordon: %q", errs)
	}
	if code, _, errs := runCtl(st, "uncordon", "a"); code != 0 {
		t.Fatalf("uncordon: %q", errs)
	}
	if r := deployed("after uncordon"); strings.Join(r.Targets, ",") != "a,b" || r.Distribution.Targets("web")[0] != "b" {
		t.Fatalf("after uncordon: %+v", r)
	}
	if code, _, errs := runCtl(st, "cordon", "x"); code != 1 || !strings.Contains(errs, `unknown target "x"`) {
		t.Errorf("cordon x: %d %q", code, errs)
	}
}

func TestCtlErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, 2, "no command given"},
		{[]string{"reboot"}, 2, `unknown command "reboot"`},
		{[]string{"drain"}, 2, "drain needs an argument"},
		{[]string{"pause", "now"}, 2, `unexpected argument "now"`},
		{[]string{"logs", "web", "--tail", "0"}, 2, "--tail"},
		{[]string{"logs", "web"}, 2, "--agent-token-file is required"},
		{[]string{"status", "-o", "yaml"}, 2, "text or json"},
		{[]string{"--state-dir", dir, "status"}, 1, "is dydisnix-self-adapt running with this --state-dir?"},
	} {
		if code, _, errs := runCtl(c.args...); code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d %q, want %d and %q", c.args, code, errs, c.code, c.msg)
		}
	}
}
