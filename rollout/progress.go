package rollout

import (
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer"
)

// The phases of a step as progress reports name them.
const (
	PhaseStarted = "started"
	PhaseDone    = "done"
	PhaseUndone  = "undone"
	PhaseFailed  = "failed"
	PhaseSkipped = "skipped"
)

// StepProgress is one progress report of a transition's step: step Step of
// Of, what it does (Op: activate, deactivate, transfer, ...), on which
// service and target, and how it went. Duration is zero for a start.
type StepProgress struct {
	Step     int           `json:"step"`
	Of       int           `json:"of"`
	Op       string        `json:"op"`
	Service  string        `json:"service,omitempty"`
	Target   string        `json:"target"`
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration,omitempty"`
	Detail   string        `json:"detail,omitempty"`
	Err      string        `json:"error,omitempty"`
}

// Progress converts a deployer step event of a transition of of steps.
func Progress(e deployer.StepEvent, of int) StepProgress {
	p := StepProgress{Step: e.Step.ID, Of: of, Op: string(e.Step.Kind), Service: e.Step.Service, Target: e.Step.Target,
		Phase: phaseName(e.Phase), Duration: e.Duration, Detail: e.Detail}
	if e.Err != nil {
		p.Err = e.Err.Error()
	}
	return p
}

func phaseName(p deployer.EventPhase) string {
	switch p {
	case deployer.PhaseStart:
		return PhaseStarted
	case deployer.PhaseUndo:
		return PhaseUndone
	case deployer.PhaseSkip:
		return PhaseSkipped
	}
	return string(p)
}

// String renders the report as one line: "[3/7] done: activate web on t1 (12ms)".
func (p StepProgress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%d/%d] %s: %s", p.Step, p.Of, p.Phase, p.Op)
	if p.Service != "" {
		fmt.Fprintf(&b, " %s", p.Service)
	}
	fmt.Fprintf(&b, " on %s", p.Target)
	if p.Duration > 0 {
		fmt.Fprintf(&b, " (%s)", p.Duration.Round(time.Millisecond))
	}
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	if p.Err != "" {
		b.WriteString(": " + p.Err)
	}
	return b.String()
}

// PrintProgress returns a Config.Progress that writes one line "[i/N]
// phase: op service on target (duration)" to w for every step event,
// starts included.
func PrintProgress(w io.Writer) func(deployer.StepEvent, int) {
	return func(e deployer.StepEvent, of int) {
		fmt.Fprintln(w, Progress(e, of).String())
	}
}

// LogProgress returns a Config.Progress that logs every step event with
// the fields step, of, op, service, target, phase and duration (and
// detail, error): at INFO, WARN for a failed or undone step.
func LogProgress(log *zap.Logger) func(deployer.StepEvent, int) {
	return func(e deployer.StepEvent, of int) {
		p := Progress(e, of)
		fields := []zap.Field{zap.Int("step", p.Step), zap.Int("of", p.Of), zap.String("op", p.Op),
			zap.String("service", p.Service), zap.String("target", p.Target), zap.String("phase", p.Phase)}
		if p.Phase != PhaseStarted {
			fields = append(fields, zap.Duration("duration", p.Duration))
		}
		if p.Detail != "" {
			fields = append(fields, zap.String("detail", p.Detail))
		}
		if p.Err != "" {
			fields = append(fields, zap.String("error", p.Err))
		}
		if p.Phase == PhaseFailed || p.Phase == PhaseUndone {
			log.Warn("step", fields...)
			return
		}
		log.Info("step", fields...)
	}
}

// ProgressFor returns the Config.Progress of a command with the given
// --log-format: LogProgress(log) (JSON lines) for "json", else
// PrintProgress(w) ([i/N] lines).
func ProgressFor(logFormat string, w io.Writer, log *zap.Logger) func(deployer.StepEvent, int) {
	if logFormat == "json" {
		return LogProgress(log)
	}
	return PrintProgress(w)
}
