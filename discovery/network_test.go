package discovery_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/netns"
)

// browserTiming is the browse interval and debounce of a run; the
// documented removal bound follows from them (MDNSSource.RemovalBound):
// no-answer timeout (3 rounds + 0.5 s) + one round + debounce.
type browserTiming struct{ browse, debounce time.Duration }

func (b browserTiming) removalBound() time.Duration {
	return 3*b.browse + 500*time.Millisecond + b.browse + b.debounce
}

var (
	// fastTiming is what the CI test uses.
	fastTiming = browserTiming{500 * time.Millisecond, 100 * time.Millisecond}
	// defaultTiming is the browser's defaults (DefaultBrowseInterval,
	// DefaultDebounce).
	defaultTiming = browserTiming{discovery.DefaultBrowseInterval, discovery.DefaultDebounce}
)

// detection holds the delays measured on the namespace testbed, from the
// action to the moment the browser process printed the snapshot.
type detection struct {
	change, goodbye, kill9NoEndpoint, kill9Endpoint time.Duration
}

type publisherProc struct {
	cmd    *exec.Cmd
	exited <-chan struct{}
}

func startPublisher(t testing.TB, nd *netns.Node, bin, props string, extra ...string) publisherProc {
	t.Helper()
	args := append([]string{"--interface", nd.Interface, "--properties", props}, extra...)
	cmd := nd.Command(context.Background(), bin+"/dydisnix-publishinfra", args...)
	cmd.Stderr = testWriter{t, nd.Name}
	return publisherProc{cmd, netns.StartT(t, cmd)}
}

// runRealNetwork is the real-network scenario: three namespaces on a
// bridge, publishers in two, the browser in the third.
// It checks what happens; how fast is measured (the returned delays) and
// compared with the documented bounds by BenchmarkDetection.
func runRealNetwork(t testing.TB, timing browserTiming, cable bool) detection {
	bin := commands(t)
	nw := netns.NewNetworkT(t, "ddn", 3)
	n1, n2, n3 := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "test1.json"), filepath.Join(dir, "test2.yaml")
	writeJSON(t, p1, map[string]any{"properties": map[string]any{"hostname": "test1", "mem": 1024, "zone": "a"}, "containers": map[string]any{"process": map[string]any{}}})
	writeJSON(t, p2, map[string]any{"properties": map[string]any{"hostname": "test2", "mem": 512, "zone": "b"}}) // JSON is YAML too

	w := startWatcher(t, n3.Command(context.Background(), bin+"/dydisnix-geninfra-mdns", "--watch", "--interface", n3.Interface,
		"--browse-interval", timing.browse.String(), "--debounce", timing.debounce.String(), "-t", "1s"))
	w.wait(t, "first snapshot", func(discovery.Snapshot) bool { return true })

	pub1 := startPublisher(t, n1, bin, p1, "--serve", "0.0.0.0:9001")
	pub2 := startPublisher(t, n2, bin, p2)
	both := w.wait(t, "both targets", func(s discovery.Snapshot) bool { return len(s.Infrastructure) == 2 })
	t1, t2 := both.Infrastructure["test1"], both.Infrastructure["test2"]
	if t1 == nil || t2 == nil {
		t.Fatalf("targets: %v", both.Infrastructure)
	}
	if t1.Properties["zone"] != "a" || t2.Properties["zone"] != "b" || fmt.Sprint(t2.Properties["mem"]) != "512" {
		t.Fatalf("properties: %v / %v", t1.Properties, t2.Properties)
	}
	if t1.Properties[discovery.AgentURLProperty] != "http://"+n1.Addr+":9001" {
		t.Fatalf("test1 agentURL = %v", t1.Properties[discovery.AgentURLProperty])
	}
	if _, ok := t1.Containers["process"]; !ok {
		t.Fatalf("test1 containers: %v", t1.Containers)
	}
	var d detection

	// A properties change is announced at once.
	// The change is the rename that puts the new file in place (as an
	// editor or config tool does); the time to write and fsync it (with
	// model.WriteFileAtomic, 0.5 s and more on a loaded VM) is not the
	// discovery's delay.
	tmp := p1 + ".new"
	writeJSON(t, tmp, map[string]any{"properties": map[string]any{"hostname": "test1", "mem": 1024, "zone": "c"}, "containers": map[string]any{"process": map[string]any{}}})
	start := time.Now()
	if err := os.Rename(tmp, p1); err != nil {
		t.Fatal(err)
	}
	s := w.wait(t, "test1 changed", hasEvent(discovery.EventChanged, "test1"))
	d.change = s.got.Sub(start)
	if s.Infrastructure["test1"].Properties["zone"] != "c" {
		t.Fatalf("changed test1: %v", s.Infrastructure["test1"].Properties)
	}

	// A graceful stop says goodbye.
	start = time.Now()
	pub2.cmd.Process.Signal(syscall.SIGTERM)
	s = w.wait(t, "test2 removed", hasEvent(discovery.EventRemoved, "test2"))
	d.goodbye = s.got.Sub(start)
	if r := lastEvent(s, "test2").Reason; r != discovery.ReasonGoodbye {
		t.Fatalf("test2 removed for %q, want goodbye", r)
	}
	<-pub2.exited

	// It comes back.
	pub2 = startPublisher(t, n2, bin, p2)
	w.wait(t, "test2 back", hasEvent(discovery.EventAdded, "test2"))

	if cable {
		// A pulled cable: no answers, removed; plugged back in: added again
		// without any re-announcement (it answers the next round).
		if err := n2.Disconnect(); err != nil {
			t.Fatal(err)
		}
		s = w.wait(t, "test2 removed after the cable was pulled", hasEvent(discovery.EventRemoved, "test2"))
		if r := lastEvent(s, "test2").Reason; r != discovery.ReasonNoAnswer {
			t.Fatalf("test2 removed for %q, want no-answer", r)
		}
		if err := n2.Reconnect(); err != nil {
			t.Fatal(err)
		}
		w.wait(t, "test2 back after the cable was plugged in", hasEvent(discovery.EventAdded, "test2"))
	}

	// kill -9 of a machine without endpoint: no goodbye, no probe; the
	// no-answer timeout removes it.
	start = time.Now()
	pub2.cmd.Process.Kill()
	s = w.wait(t, "test2 removed after kill -9", hasEvent(discovery.EventRemoved, "test2"))
	d.kill9NoEndpoint = s.got.Sub(start)
	if r := lastEvent(s, "test2").Reason; r != discovery.ReasonNoAnswer {
		t.Fatalf("test2 removed for %q, want no-answer", r)
	}

	// kill -9 of a machine whose endpoint is probed.
	start = time.Now()
	pub1.cmd.Process.Kill()
	s = w.wait(t, "test1 removed after kill -9", hasEvent(discovery.EventRemoved, "test1"))
	d.kill9Endpoint = s.got.Sub(start)
	if len(s.Infrastructure) != 0 {
		t.Fatalf("left over: %v", s.Infrastructure)
	}
	return d
}

func lastEvent(s stampedSnap, target string) discovery.Event {
	var out discovery.Event
	for _, e := range s.Events {
		if e.Target == target {
			out = e
		}
	}
	return out
}

func TestMDNSRealNetwork(t *testing.T) {
	d := runRealNetwork(t, fastTiming, true)
	netRemovalBound := fastTiming.removalBound()
	t.Logf("properties change -> changed event: %v", d.change)
	t.Logf("goodbye (SIGTERM) -> removed event: %v", d.goodbye)
	t.Logf("kill -9, no endpoint -> removed event: %v (bound %v)", d.kill9NoEndpoint, netRemovalBound)
	t.Logf("kill -9, probed endpoint -> removed event: %v", d.kill9Endpoint)
}

// BenchmarkDetection measures the detection delays on the namespace testbed
// (run as root: go test ./discovery -run XXX -bench Detection -benchtime 3x),
// with the fast settings of the CI test and with the browser's defaults.
func BenchmarkDetection(b *testing.B) {
	b.Run("fast", func(b *testing.B) { benchDetection(b, fastTiming) })
	b.Run("defaults", func(b *testing.B) { benchDetection(b, defaultTiming) })
}

func benchDetection(b *testing.B, timing browserTiming) {
	var sum detection
	for i := 0; i < b.N; i++ {
		d := runRealNetwork(b, timing, false)
		sum.change += d.change
		sum.goodbye += d.goodbye
		sum.kill9NoEndpoint += d.kill9NoEndpoint
		sum.kill9Endpoint += d.kill9Endpoint
	}
	n := float64(b.N)
	b.ReportMetric(float64(sum.change.Milliseconds())/n, "change-ms")
	b.ReportMetric(float64(sum.goodbye.Milliseconds())/n, "goodbye-ms")
	b.ReportMetric(float64(sum.kill9NoEndpoint.Milliseconds())/n, "kill9-ms")
	b.ReportMetric(float64(sum.kill9Endpoint.Milliseconds())/n, "kill9-probed-ms")
	b.ReportMetric(float64(timing.removalBound().Milliseconds()), "kill9-bound-ms")
	if avg := sum.kill9NoEndpoint / time.Duration(b.N); avg > timing.removalBound() {
		b.Errorf("kill -9 without endpoint: removed after %v on average, over the documented bound %v", avg, timing.removalBound())
	}
	b.ReportMetric(0, "ns/op")
}
