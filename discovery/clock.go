package discovery

import (
	"time"

	"github.com/dydisnix/dydisnix/internal/clock"
)

// Clock tells the time and makes timers. Sources and the publisher take one
// so that tests can drive debouncing, expiry and probing without sleeping.
type Clock = clock.Clock

// Timer is the part of *time.Timer the sources use.
type Timer = clock.Timer

// RealClock is the wall clock.
type RealClock = clock.Real

// FakeClock is a manual clock for tests: time moves only when Advance is
// called, and timers whose deadline has passed fire then.
type FakeClock = clock.Fake

// NewFakeClock returns a fake clock set to start.
func NewFakeClock(start time.Time) *FakeClock { return clock.NewFake(start) }

func clockOrReal(c Clock) Clock { return clock.OrReal(c) }
