package adapt

import "time"

// Timing holds every delay of the loop. Zero fields take the value of
// DefaultTiming; each default says why it is what it is.
type Timing struct {
	// Debounce is the quiet period after the last change before a redeploy
	// starts, so a burst of events yields one redeploy. 150 ms: discovery
	// already debounces its own bursts; this gathers a model edit written
	// in several steps and simultaneous departures, while a graceful stop
	// still starts its redeploy well under 1 s.
	Debounce time.Duration
	// MaxDelay caps the debounce for a continuous stream of changes: the
	// redeploy starts at most this long after the first change. 1 s.
	MaxDelay time.Duration
	// InitialSettle is how long after start the first deploy waits, so the
	// first distribution is computed from the whole network rather than the
	// first machine to answer. 2 s (mDNS answers arrive within ~1 s).
	InitialSettle time.Duration
	// RemoveGrace is how long a target missing from discovery without a
	// goodbye or drain (crash, expiry, failed probe) is still used; a
	// return within it cancels the removal. 250 ms: discovery has already
	// confirmed the loss (two failed liveness probes or an expired record),
	// and a crash must be redeployed within 5 s; this only absorbs a
	// removal immediately followed by a re-announcement.
	RemoveGrace time.Duration
	// Stabilise is how long a target that was removed once must be present
	// without interruption before it is used again. 10 s.
	Stabilise time.Duration
	// FlapStabilise replaces Stabilise for a flapping target (removed at
	// least twice within FlapWindow) and doubles with every further
	// removal. 2 min: with it, a machine flapping for 60 s causes at most 3
	// redeploys (removal, return, second removal).
	FlapStabilise time.Duration
	// MaxStabilise caps the doubled FlapStabilise. 10 min.
	MaxStabilise time.Duration
	// FlapWindow is how long a removal is remembered. 10 min.
	FlapWindow time.Duration
	// Resync is the period of the safety-net resync: model files are
	// reloaded and the input hash compared even without events. 5 s, the
	// original's --interval default.
	Resync time.Duration
	// BackoffInitial, BackoffMax, BackoffMultiplier and
	// BackoffRandomization shape the retries of a failed deploy
	// (cenkalti/backoff): 1 s, doubling, up to 1 min, ±20 % jitter so that
	// coordinators do not retry in lock step. A negative randomization
	// means none (for tests).
	BackoffInitial       time.Duration
	BackoffMax           time.Duration
	BackoffMultiplier    float64
	BackoffRandomization float64
}

// DefaultTiming returns the documented defaults.
func DefaultTiming() Timing {
	return Timing{
		Debounce:             150 * time.Millisecond,
		MaxDelay:             time.Second,
		InitialSettle:        2 * time.Second,
		RemoveGrace:          250 * time.Millisecond,
		Stabilise:            10 * time.Second,
		FlapStabilise:        2 * time.Minute,
		MaxStabilise:         10 * time.Minute,
		FlapWindow:           10 * time.Minute,
		Resync:               5 * time.Second,
		BackoffInitial:       time.Second,
		BackoffMax:           time.Minute,
		BackoffMultiplier:    2,
		BackoffRandomization: 0.2,
	}
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&t.Debounce, d.Debounce)
	set(&t.MaxDelay, d.MaxDelay)
	set(&t.InitialSettle, d.InitialSettle)
	set(&t.RemoveGrace, d.RemoveGrace)
	set(&t.Stabilise, d.Stabilise)
	set(&t.FlapStabilise, d.FlapStabilise)
	set(&t.MaxStabilise, d.MaxStabilise)
	set(&t.FlapWindow, d.FlapWindow)
	set(&t.Resync, d.Resync)
	set(&t.BackoffInitial, d.BackoffInitial)
	set(&t.BackoffMax, d.BackoffMax)
	if t.BackoffMultiplier == 0 {
		t.BackoffMultiplier = d.BackoffMultiplier
	}
	switch {
	case t.BackoffRandomization == 0:
		t.BackoffRandomization = d.BackoffRandomization
	case t.BackoffRandomization < 0:
		t.BackoffRandomization = 0
	}
	// A negative duration means "none" (e.g. no settle, no grace).
	for _, v := range []*time.Duration{&t.Debounce, &t.MaxDelay, &t.InitialSettle, &t.RemoveGrace, &t.Stabilise} {
		if *v < 0 {
			*v = 0
		}
	}
	return t
}
