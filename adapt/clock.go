package adapt

import (
	"github.com/dydisnix/dydisnix/internal/clock"
)

// Clock is the loop's source of time. Everything the loop debounces,
// expires, backs off, times out or schedules (the snapshot schedule
// included) goes through it, so tests drive time with a fake clock instead
// of sleeping.
type Clock = clock.Clock

// Timer is a one-shot timer of a Clock.
type Timer = clock.Timer

// RealClock is the wall clock.
type RealClock = clock.Real
