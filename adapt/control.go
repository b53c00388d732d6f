package adapt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/rollout"
)

// RunningStep is a step of the running deploy (Status.Running): step Step
// of Of, what it does, on which service and target, running since Since.
type RunningStep struct {
	Step    int       `json:"step"`
	Of      int       `json:"of"`
	Op      string    `json:"op"`
	Service string    `json:"service,omitempty"`
	Target  string    `json:"target"`
	Since   time.Time `json:"since"`
}

// progress follows the step events of the running deploy (the pass calls
// it through rollout.Request.Progress): Status.Running is the step started
// last among those still running.
func (l *Loop) progress(e deployer.StepEvent, of int) {
	p := rollout.Progress(e, of)
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Phase == rollout.PhaseStarted {
		l.steps[p.Step] = RunningStep{Step: p.Step, Of: of, Op: p.Op, Service: p.Service, Target: p.Target, Since: l.clock.Now()}
	} else {
		delete(l.steps, p.Step)
	}
	var last *RunningStep
	for _, s := range l.steps {
		if last == nil || s.Since.After(last.Since) || (s.Since.Equal(last.Since) && s.Step > last.Step) {
			s := s
			last = &s
		}
	}
	l.status.Running = last
}

// ControlSocketName is the name of the control socket in the coordinator's
// state directory (dydisnix-self-adapt serves it, dydisnix-ctl uses it).
const ControlSocketName = "control.sock"

type controlReq struct {
	c     Control
	reply chan error
}

// ErrNotRunning is Control's error when the loop does not run (not yet
// started or stopped).
var ErrNotRunning = errors.New("the loop is not running")

// Control applies an operator's command in the loop's goroutine and returns
// once it is applied (a redeploy or a drain has then been scheduled, not
// finished). It fails for an unknown target, a redeploy while paused, and
// when the loop does not run.
func (l *Loop) Control(ctx context.Context, c Control) error {
	req := controlReq{c: c, reply: make(chan error, 1)}
	select {
	case l.control <- req:
	case <-l.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.reply
}

// ControlResponse is the answer of the control endpoints.
type ControlResponse struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ControlHandler serves the operator's endpoints: GET /status (as
// Handler does: a summary, ?detail=… for the lists), and POST
// /v1/pause, /v1/resume, /v1/redeploy, /v1/cordon/{target},
// /v1/drain/{target}, /v1/uncordon/{target}. It has no authentication of
// its own: Serve serves it only on a unix socket that only the loop's user
// can open (ControlSocket).
func (l *Loop) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", l.serveStatus)
	for _, op := range []ControlOp{ControlPause, ControlResume, ControlRedeploy} {
		mux.HandleFunc("POST /v1/"+string(op), func(w http.ResponseWriter, r *http.Request) {
			l.serveControl(w, r, Control{Op: op})
		})
	}
	for _, op := range []ControlOp{ControlCordon, ControlDrain, ControlUncordon} {
		mux.HandleFunc("POST /v1/"+string(op)+"/{target}", func(w http.ResponseWriter, r *http.Request) {
			l.serveControl(w, r, Control{Op: op, Target: r.PathValue("target")})
		})
	}
	return mux
}

func (l *Loop) serveControl(w http.ResponseWriter, r *http.Request, c Control) {
	err := l.Control(r.Context(), c)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case errors.Is(err, ErrNotRunning):
		w.WriteHeader(http.StatusServiceUnavailable)
	case err != nil:
		w.WriteHeader(http.StatusConflict)
	}
	resp := ControlResponse{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// Alive returns nil once Run's goroutine has taken a liveness probe, which
// proves it still handles events (a deploy runs beside it, so a long deploy
// is not a hang). It fails when the loop does not run or ctx ends first.
func (l *Loop) Alive(ctx context.Context) error {
	c := make(chan struct{})
	select {
	case l.alive <- c:
	case <-l.done:
		return ErrNotRunning
	case <-ctx.Done():
		return fmt.Errorf("the loop did not answer a liveness probe: %w", ctx.Err())
	}
	<-c
	return nil
}
