package discovery

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// backedOff doubles the probe timeout up to ProbeBackoffLimit times the
// base.
func TestBackedOff(t *testing.T) {
	t.Parallel()
	base := 800 * time.Millisecond
	cur := time.Duration(0)
	for _, want := range []time.Duration{1600 * time.Millisecond, 3200 * time.Millisecond, 3200 * time.Millisecond} {
		if cur = backedOff(cur, base); cur != want {
			t.Fatalf("backed off to %v, want %v", cur, want)
		}
	}
}

// An endpoint that answers its probes, but later than the probe timeout
// (a starved host), stays a member: the probe after a timeout waits twice
// as long. With a fixed timeout every probe would time out and it would be
// removed. One that stops answering is removed by its timeouts.
func TestProbeBackoffKeepsASlowEndpoint(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddb").RerunTest(t)
		return
	}
	const probeTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probed := make(chan struct{}, 64)
	var hang atomic.Bool // from the second phase on: never answer
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case probed <- struct{}{}:
		default:
		}
		delay := probeTimeout * 3 / 2 // half again the probe timeout
		if hang.Load() {
			delay = time.Hour
		}
		select { // unless the client gives up
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tg := mustTarget(t, "slow", map[string]any{"properties": map[string]any{"hostname": "slow"}})
	serveLo(t, endpointResponder(t, tg, "http://"+ln.Addr().String()))
	_, out := runBrowser(t, BrowserConfig{
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond,
		ProbeInterval: 100 * time.Millisecond, ProbeTimeout: probeTimeout, ProbeFailures: 3,
	})
	added := false
	deadline := time.After(time.Minute)
	for probes := 0; probes < 12; {
		select {
		case <-probed:
			probes++
		case s := <-out:
			for _, e := range s.Events {
				if e.Target == "slow" && e.Kind == EventRemoved {
					t.Fatalf("the slow endpoint was removed (%s) after %d probes", e.Reason, probes)
				}
			}
			added = added || s.Infrastructure["slow"] != nil
		case <-deadline:
			t.Fatalf("%d probes in a minute, want 12", probes)
		}
	}
	if !added {
		t.Fatal("the slow endpoint was never a member")
	}
	// An endpoint that never answers is still removed by its timeouts.
	hang.Store(true)
	for {
		select {
		case s := <-out:
			for _, e := range s.Events {
				if e.Target == "slow" && e.Kind == EventRemoved {
					if e.Reason != ReasonProbeFailed {
						t.Fatalf("the hanging endpoint was removed for %q, want %q", e.Reason, ReasonProbeFailed)
					}
					return
				}
			}
		case <-deadline:
			t.Fatal("the hanging endpoint was still a member after a minute")
		}
	}
}

// roundTripFunc is an http.RoundTripper of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// With ProbeClient, an announced endpoint is probed with the client it
// returns for the announced target (a coordinator's client for that
// target's agent, whose kept-alive connection the probes then share), not
// with HTTPClient; where it returns nil, HTTPClient probes.
func TestProbesUseTheTargetsClient(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddb").RerunTest(t)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	endpoint := "http://" + ln.Addr().String()
	for _, name := range []string{"shared", "other"} {
		tg := mustTarget(t, name, map[string]any{"properties": map[string]any{"hostname": name}})
		serveLo(t, endpointResponder(t, tg, endpoint))
	}
	var viaTarget, viaDefault atomic.Int32
	var wrong atomic.Value
	counting := func(n *atomic.Int32) *http.Client {
		return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			n.Add(1)
			return http.DefaultTransport.RoundTrip(r)
		})}
	}
	targetClient, defaultClient := counting(&viaTarget), counting(&viaDefault)
	_, out := runBrowser(t, BrowserConfig{
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond,
		ProbeInterval: 50 * time.Millisecond, HTTPClient: defaultClient,
		ProbeClient: func(tg *model.Target, ep string) *http.Client {
			if tg == nil {
				wrong.Store("asked for a client without a target")
				return nil
			}
			if ep != endpoint {
				wrong.Store(fmt.Sprintf("asked for %v's client at %s, want %s", tg, ep, endpoint))
			}
			if tg.Name == "shared" {
				return targetClient
			}
			return nil
		},
	})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-out:
			case <-done:
				return
			}
		}
	}()
	testenv.Eventually(t, time.Minute, func() bool { return viaTarget.Load() >= 5 && viaDefault.Load() >= 5 },
		"5 probes with the target's client and 5 with HTTPClient")
	if w := wrong.Load(); w != nil {
		t.Error(w)
	}
}
