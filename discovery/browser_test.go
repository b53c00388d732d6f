package discovery

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dydisnix/dydisnix/internal/netns"
)

// The browser loop runs on the injected clock: with a fake clock, a
// machine that stops answering (no goodbye) is removed exactly when the
// no-answer timeout has passed in fake time.
func TestBrowserFakeClockNoAnswer(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddf").RerunTest(t)
		return
	}
	ifaces, err := ResolveInterfaces([]string{"lo"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := openMDNS(ifaces)
	if err != nil {
		t.Fatal(err)
	}
	r := &responder{conn: conn, instance: "disnix-fake", host: "fake.local.", port: 22, ttl: 120,
		txt: []string{"txtvers=1", `properties."hostname"="fake"`}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}}
	stop := make(chan struct{})
	served := make(chan struct{})
	ready := make(chan error, 1)
	go func() { defer close(served); r.serve(stop, ready) }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	crash := func() { // no goodbye
		close(stop)
		conn.Close()
		<-served
	}

	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := NewFakeClock(t0)
	src, err := NewMDNSSource(BrowserConfig{
		Interfaces: []string{"lo"}, Clock: clk, Logger: zaptest.NewLogger(t),
		BrowseInterval: 2 * time.Second, InitialWait: time.Second, Debounce: 100 * time.Millisecond, ProbeInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Snapshot, 8)
	go src.Run(ctx, out)

	// Step fake time in 100 ms steps until the target shows up.
	next := func(what string, ok func(Snapshot) bool) Snapshot {
		t.Helper()
		for i := 0; i < 400; i++ {
			waitTimer(t, clk)
			clk.Advance(100 * time.Millisecond)
			select {
			case s := <-out:
				if ok(s) {
					return s
				}
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Fatalf("waiting for %s: nothing within 40 s of fake time", what)
		return Snapshot{}
	}
	next("fake added", func(s Snapshot) bool { return s.Infrastructure["fake"] != nil })
	crash()
	crashedAt := clk.Now()
	s := next("fake removed", func(s Snapshot) bool { return s.Infrastructure["fake"] == nil })
	var ev Event
	for _, e := range s.Events {
		if e.Target == "fake" {
			ev = e
		}
	}
	if ev.Kind != EventRemoved || ev.Reason != ReasonNoAnswer {
		t.Fatalf("event %+v, want removed/no-answer", ev)
	}
	// Last answer ≤ crash time; removal = last answer + NoAnswerTimeout
	// (3×2 s + 0.5 s), detected on a 100 ms step.
	if d := ev.At.Sub(crashedAt); d > src.cfg.NoAnswerTimeout+100*time.Millisecond || d < src.cfg.NoAnswerTimeout-src.cfg.BrowseInterval-100*time.Millisecond {
		t.Fatalf("removed %v after the crash (fake time), want about %v", d, src.cfg.NoAnswerTimeout)
	}
	if s.At.Sub(ev.At) > src.cfg.Debounce+100*time.Millisecond {
		t.Fatalf("snapshot %v after the event, debounce is %v", s.At.Sub(ev.At), src.cfg.Debounce)
	}
}
