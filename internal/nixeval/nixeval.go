// Package nixeval runs the Nix evaluator (nix-instantiate) for every part of
// dydisnix that reads Nix: model files, augmentation models and the output
// of property and infrastructure generators.
//
// The evaluator runs in a process group of its own, and cancelling the
// context kills that whole group, so a SIGTERM to a dydisnix command stops a
// long evaluation together with anything the evaluator started.
package nixeval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Command is the evaluator looked up on PATH when a caller names none.
const Command = "nix-instantiate"

// waitDelay bounds how long Run waits for the evaluator's output pipes to
// close after its process group was killed: only a process that left the
// group (setsid) could keep them open.
const waitDelay = 5 * time.Second

// Error is an evaluation that ran and failed (the evaluator exited with an
// error status).
type Error struct {
	// Stderr is everything the evaluator wrote to its standard error.
	Stderr string
	// Err is the exit error.
	Err error
}

// Error returns the evaluator's message, trimmed by Message.
func (e *Error) Error() string {
	if msg := Message(e.Stderr); msg != "" {
		return "nix evaluation failed:\n" + msg
	}
	return "nix evaluation failed: " + e.Err.Error()
}

// Unwrap returns the exit error.
func (e *Error) Unwrap() error { return e.Err }

// Run runs bin (an evaluator such as nix-instantiate) with args, feeding it
// stdin (nil for none), and returns its standard output.
//
// When ctx is done before the evaluator finishes, its process group is
// killed and the error wraps ctx.Err() (context.Canceled or
// context.DeadlineExceeded). When the evaluator fails, the error is an
// *Error. The evaluator runs in the caller's working directory.
func Run(ctx context.Context, bin string, args []string, stdin []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nix evaluation not started: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's id is the evaluator's pid (Setpgid with Pgid 0).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		// Whatever the evaluator did, it was stopped (or finished while
		// being stopped): its output cannot be trusted to be complete.
		return nil, fmt.Errorf("nix evaluation stopped: %w", ctx.Err())
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &Error{Stderr: stderr.String(), Err: err}
		}
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	return stdout.Bytes(), nil
}

// Message trims an evaluator's standard error to the error itself: the
// lines before the first "error" line (warnings) are dropped and at most 60
// lines are kept.
func Message(stderr string) string {
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "error") {
			lines = lines[i:]
			break
		}
	}
	if len(lines) > 60 {
		lines = append(lines[:60], "...")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
