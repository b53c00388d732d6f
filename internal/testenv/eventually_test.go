package testenv

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runEventually runs Eventually against a recorder and returns the failure
// message ("" when it passed).
func runEventually(timeout time.Duration, cond func() bool) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(r, timeout, cond, "the %s is ready", "thing")
	}()
	<-done
	return r.msg
}

func TestEventually(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trueAt  int64 // the call from which cond reports true; 0: never
		timeout time.Duration
		wantMsg string
	}{
		{name: "already true", trueAt: 1, timeout: time.Minute},
		{name: "true after some polls", trueAt: 5, timeout: time.Minute},
		{name: "never true", trueAt: 0, timeout: 20 * time.Millisecond,
			wantMsg: "not within 20ms: the thing is ready"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			msg := runEventually(tc.timeout, func() bool {
				n := calls.Add(1)
				return tc.trueAt != 0 && n >= tc.trueAt
			})
			if msg != tc.wantMsg {
				t.Fatalf("failure message %q, want %q", msg, tc.wantMsg)
			}
			if tc.trueAt != 0 && calls.Load() != tc.trueAt {
				t.Errorf("cond called %d times, want %d (it must stop polling once true)", calls.Load(), tc.trueAt)
			}
			if tc.trueAt == 0 && calls.Load() < 2 {
				t.Errorf("cond called %d times before giving up, want it polled until the deadline", calls.Load())
			}
		})
	}
}
