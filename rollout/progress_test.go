package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
)

func TestProgressFormats(t *testing.T) {
	t.Parallel()
	step := deployer.Step{ID: 3, Kind: deployer.StepActivate, Service: "web", Target: "t1", Key: "abcdef0123456789"}
	cases := []struct {
		ev        deployer.StepEvent
		line      string
		phase     string
		level     zapcore.Level
		wantField bool // duration present
	}{
		{deployer.StepEvent{Step: step, Phase: deployer.PhaseStart}, "[3/7] started: activate web on t1", "started", zapcore.InfoLevel, false},
		{deployer.StepEvent{Step: step, Phase: deployer.PhaseDone, Duration: 12 * time.Millisecond}, "[3/7] done: activate web on t1 (12ms)", "done", zapcore.InfoLevel, true},
		{deployer.StepEvent{Step: step, Phase: deployer.PhaseUndo, Duration: time.Millisecond, Detail: "deactivated"}, "[3/7] undone: activate web on t1 (1ms): deactivated", "undone", zapcore.WarnLevel, true},
		{deployer.StepEvent{Step: step, Phase: deployer.PhaseFailed, Duration: time.Millisecond, Err: errors.New("boom")}, "[3/7] failed: activate web on t1 (1ms): boom", "failed", zapcore.WarnLevel, true},
		{deployer.StepEvent{Step: step, Phase: deployer.PhaseSkip, Duration: time.Millisecond}, "[3/7] skipped: activate web on t1 (1ms)", "skipped", zapcore.InfoLevel, true},
	}
	for _, c := range cases {
		var b bytes.Buffer
		PrintProgress(&b)(c.ev, 7)
		if got := strings.TrimSuffix(b.String(), "\n"); got != c.line {
			t.Errorf("line %q, want %q", got, c.line)
		}
		core, logs := observer.New(zapcore.DebugLevel)
		LogProgress(zap.New(core))(c.ev, 7)
		e := logs.All()[0]
		f := e.ContextMap()
		if e.Level != c.level || f["step"] != int64(3) || f["of"] != int64(7) || f["op"] != "activate" || f["service"] != "web" ||
			f["target"] != "t1" || f["phase"] != c.phase {
			t.Errorf("%s: log %v %v", c.phase, e.Level, f)
		}
		if _, ok := f["duration"]; ok != c.wantField {
			t.Errorf("%s: duration field present %v", c.phase, ok)
		}
	}
	b, err := json.Marshal(Progress(cases[1].ev, 7))
	if err != nil || !strings.Contains(string(b), `"phase":"done"`) {
		t.Errorf("json %s %v", b, err)
	}
}

// TestPlanCordon: the services on a cordoned target stay there; no other
// service is placed on it.
func TestPlanCordon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svc := writeFile(t, dir, "services.json", `{
  "a": {"name": "a", "type": "process"}, "b": {"name": "b", "type": "process", "dependsOn": ["a"]},
  "c": {"name": "c", "type": "process"}, "d": {"name": "d", "type": "process"}}`)
	qos := writeFile(t, dir, "qos.yaml", "steps:\n  - filter: divideRoundRobin\n")
	p, err := NewPlanner(Models{Services: svc, QoS: qos}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	prev := model.Distribution{"a": {{Target: "t1"}}, "b": {{Target: "t2"}}, "c": {{Target: "t1"}}}
	d, err := p.plan(context.Background(), infraOf("t1", "t2", "t3"), prev, false, []string{"t1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "c"} {
		if got := d.Distribution.Targets(s); !slices.Equal(got, []string{"t1"}) {
			t.Errorf("%s on %v, want it kept on cordoned t1", s, got)
		}
	}
	for _, s := range []string{"b", "d"} {
		if got := d.Distribution.Targets(s); len(got) == 0 || slices.Contains(got, "t1") {
			t.Errorf("%s on %v, want a target other than cordoned t1", s, got)
		}
	}
}
