package adapt

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// stepClock is a fake Clock whose timers deliver synchronously: Advance
// hands each due timer's deadline to its receiver (an unbuffered send) and
// returns only when every due timer was received or stopped, reporting
// how many were received. A test that knows how many firings the loop has
// received can wait until the loop reports (Config.OnStep) that it has
// handled them, instead of guessing from wall time that the loop is idle.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*stepArming // armed, not yet delivered nor stopped
}

// stepArming is one arming of a stepTimer: Stop or Reset closes stop,
// which abandons a delivery in progress.
type stepArming struct {
	t    *stepTimer
	at   time.Time
	stop chan struct{}
}

type stepTimer struct {
	clock *stepClock
	c     chan time.Time
	cur   *stepArming // nil when not armed
}

func newStepClock(start time.Time) *stepClock { return &stepClock{now: start} }

func (f *stepClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer arms a timer for Now()+d; one with d <= 0 is due at once and
// is delivered by the next Advance (Advance(0) included).
func (f *stepClock) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &stepTimer{clock: f, c: make(chan time.Time)}
	f.armLocked(t, d)
	return t
}

func (f *stepClock) armLocked(t *stepTimer, d time.Duration) {
	a := &stepArming{t: t, at: f.now.Add(d), stop: make(chan struct{})}
	t.cur = a
	f.timers = append(f.timers, a)
}

func (f *stepClock) disarmLocked(a *stepArming) {
	for i, x := range f.timers {
		if x == a {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			break
		}
	}
	if a.t.cur == a {
		a.t.cur = nil
	}
}

// Advance moves the time forward by d and delivers every due timer, in
// deadline order, including those armed due while it delivers. It returns
// the number of deliveries received.
func (f *stepClock) Advance(d time.Duration) int {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
	received := 0
	for {
		f.mu.Lock()
		sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].at.Before(f.timers[j].at) })
		var a *stepArming
		if len(f.timers) > 0 && !f.timers[0].at.After(f.now) {
			a = f.timers[0]
		}
		f.mu.Unlock()
		if a == nil {
			return received
		}
		select {
		case a.t.c <- a.at:
			received++
			f.mu.Lock()
			f.disarmLocked(a)
			f.mu.Unlock()
		case <-a.stop:
		}
	}
}

func (t *stepTimer) C() <-chan time.Time { return t.c }

func (t *stepTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	a := t.cur
	if a == nil {
		return false
	}
	close(a.stop)
	t.clock.disarmLocked(a)
	return true
}

func (t *stepTimer) Reset(d time.Duration) {
	t.Stop()
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.clock.armLocked(t, d)
}

// TestStepClockDelivers: Advance delivers every due timer in deadline order
// and returns once each was received (counted) or stopped.
func TestStepClockDelivers(t *testing.T) {
	t.Parallel()
	c := newStepClock(t0)
	late, early, stopped, never := c.NewTimer(2*time.Second), c.NewTimer(time.Second), c.NewTimer(time.Second), c.NewTimer(time.Hour)
	got := make(chan time.Time, 2)
	go func() {
		stopped.Stop()
		got <- <-early.C()
		got <- <-late.C()
	}()
	if n := c.Advance(3 * time.Second); n != 2 {
		t.Fatalf("Advance received %d, want 2", n)
	}
	for _, want := range []time.Time{t0.Add(time.Second), t0.Add(2 * time.Second)} {
		if at := <-got; !at.Equal(want) {
			t.Errorf("fired %v, want %v", at, want)
		}
	}
	if !never.Stop() || never.Stop() {
		t.Error("Stop of an armed timer must report true once")
	}
	now := c.NewTimer(0)
	go func() { <-now.C() }()
	if n := c.Advance(0); n != 1 {
		t.Errorf("a timer armed with 0 is due at once: Advance(0) received %d", n)
	}
}
