package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond until it returns true and fails the test with the
// formatted message if it has not done so within timeout.
//
// It is for conditions that have no event to wait on (a file another process
// writes, a record a daemon publishes): wherever a channel, a callback or an
// injected clock can say when something happened, wait on that instead. The
// timeout is a deadline that keeps a broken test from hanging, never an
// assertion of speed: choose it generous enough for a loaded machine under
// -race, and put speed targets in benchmarks.
//
// Polling starts at one millisecond and doubles up to 100 ms, so a condition
// that is already true costs nothing and a slow one costs little CPU. Call it
// from the test's goroutine only (it may call t.Fatalf).
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	const maxWait = 100 * time.Millisecond
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if cond() {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("not within %v: "+format, append([]any{timeout}, args...)...)
			return
		}
		time.Sleep(min(wait, left))
		wait = min(2*wait, maxWait)
	}
}
