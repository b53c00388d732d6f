package discovery

import "time"

// Debouncer collects events and says when a burst is over: Due once no
// event arrived for Quiet, or MaxDelay after the first event of the burst,
// whichever comes first. It is a state machine without I/O.
type Debouncer struct {
	Quiet    time.Duration
	MaxDelay time.Duration

	pending []Event
	first   time.Time
	last    time.Time
}

// Add records events that happened at now.
func (d *Debouncer) Add(evs []Event, now time.Time) {
	if len(evs) == 0 {
		return
	}
	if len(d.pending) == 0 {
		d.first = now
	}
	d.last = now
	d.pending = append(d.pending, evs...)
}

// Deadline returns when the pending burst is due (false when nothing waits).
func (d *Debouncer) Deadline() (time.Time, bool) {
	if len(d.pending) == 0 {
		return time.Time{}, false
	}
	at := d.last.Add(d.Quiet)
	if d.MaxDelay > 0 {
		if m := d.first.Add(d.MaxDelay); m.Before(at) {
			at = m
		}
	}
	return at, true
}

// Take returns the pending events when the burst is due at now.
func (d *Debouncer) Take(now time.Time) ([]Event, bool) {
	at, ok := d.Deadline()
	if !ok || now.Before(at) {
		return nil, false
	}
	evs := d.pending
	d.pending = nil
	return evs, true
}
