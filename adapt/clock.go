package adapt

import (
	"time"

	"github.com/dydisnix/dydisnix/internal/clock"
)

// Clock is the loop's source of time. Everything the loop debounces,
// expires, backs off or schedules goes through it, so tests drive time with
// a FakeClock instead of sleeping.
type Clock = clock.Clock

// Timer is a one-shot timer of a Clock.
type Timer = clock.Timer

// RealClock is the wall clock.
type RealClock = clock.Real

// FakeClock is a manually advanced clock for tests. Timers fire, in order of
// their deadlines, when Advance moves the time past them.
type FakeClock = clock.Fake

// NewFakeClock returns a fake clock set to start.
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }
