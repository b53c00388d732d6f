package discovery_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/model"
)

// fastBrowser is the browser configuration of the namespace tests: rounds
// every 500 ms, so that crash detection takes about two seconds.
func fastBrowser(ifaces ...string) discovery.BrowserConfig {
	return discovery.BrowserConfig{
		Interfaces:     ifaces,
		BrowseInterval: 500 * time.Millisecond,
		InitialWait:    700 * time.Millisecond,
		Debounce:       100 * time.Millisecond,
		ProbeInterval:  300 * time.Millisecond,
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// commands builds the discovery commands once per test binary.
func commands(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "dydisnix-discovery-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/",
			"github.com/dydisnix/dydisnix/cmd/dydisnix-publishinfra",
			"github.com/dydisnix/dydisnix/cmd/dydisnix-geninfra-mdns")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// recvSnap reads snapshots until one satisfies ok, or fails after
// eventDeadline.
func recvSnap(t testing.TB, ch <-chan discovery.Snapshot, what string, ok func(discovery.Snapshot) bool) discovery.Snapshot {
	t.Helper()
	deadline := time.After(eventDeadline)
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("waiting for %s: source stopped", what)
			}
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("waiting for %s: nothing after %v", what, eventDeadline)
		}
	}
}

func hasEvent(kind discovery.EventKind, target string) func(discovery.Snapshot) bool {
	return func(s discovery.Snapshot) bool {
		for _, e := range s.Events {
			if e.Kind == kind && e.Target == target {
				return true
			}
		}
		return false
	}
}

func target(t testing.TB, name string, props map[string]any) *model.Target {
	t.Helper()
	v, err := model.Normalize(map[string]any{"properties": props})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := model.TargetFromValue(name, v, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func runSource(t testing.TB, src discovery.Source) <-chan discovery.Snapshot {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan discovery.Snapshot, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := src.Run(ctx, ch); err != nil {
			t.Errorf("source: %v", err)
		}
		close(ch)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func runPublisher(t testing.TB, p *discovery.Publisher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil {
			t.Errorf("publisher: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// One namespace, one process: publisher and browser on lo.
func TestMDNSOneNamespaceInProcess(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddd").RerunTest(t)
		return
	}
	log := zaptest.NewLogger(t)
	key := discovery.NewHMACKey([]byte("a shared secret for the test"))
	cfg := fastBrowser("lo")
	cfg.Logger = log
	cfg.Verifier = key
	snaps := runSource(t, mustSource(t, cfg))
	first := recvSnap(t, snaps, "first snapshot", func(discovery.Snapshot) bool { return true })
	if len(first.Infrastructure) != 0 {
		t.Fatalf("first snapshot of an empty network: %v", first.Infrastructure)
	}

	// An unsigned publisher is ignored by a browser with a key.
	unsigned, _ := discovery.NewPublisher(discovery.PublisherConfig{Interfaces: []string{"lo"}, Target: target(t, "rogue", map[string]any{"hostname": "rogue"}), Logger: log})
	runPublisher(t, unsigned)

	// A signed one is seen with its properties.
	t1 := target(t, "test1", map[string]any{"hostname": "test1", "mem": 1024, "supportedTypes": []any{"process", "wrapper"}})
	pub, err := discovery.NewPublisher(discovery.PublisherConfig{Interfaces: []string{"lo"}, Target: t1, Signer: key, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	stop := runPublisher(t, pub)
	s := recvSnap(t, snaps, "test1 added", hasEvent(discovery.EventAdded, "test1"))
	got := s.Infrastructure["test1"]
	if got == nil || got.Properties["mem"] != json.Number("1024") || fmt.Sprint(got.Properties["supportedTypes"]) != "[process wrapper]" {
		t.Fatalf("test1 seen as %+v", got)
	}
	if _, ok := s.Infrastructure["rogue"]; ok {
		t.Fatal("unsigned announcement accepted")
	}

	// A property change is seen at once.
	t1b := target(t, "test1", map[string]any{"hostname": "test1", "mem": 2048, "supportedTypes": []any{"process", "wrapper"}})
	if err := pub.SetTarget(t1b); err != nil {
		t.Fatal(err)
	}
	s = recvSnap(t, snaps, "test1 changed", hasEvent(discovery.EventChanged, "test1"))
	if s.Infrastructure["test1"].Properties["mem"] != json.Number("2048") {
		t.Fatalf("changed test1: %v", s.Infrastructure["test1"].Properties)
	}

	// A new hostname is a new instance: the old one says goodbye.
	if err := pub.SetTarget(target(t, "test9", map[string]any{"hostname": "test9"})); err != nil {
		t.Fatal(err)
	}
	recvSnap(t, snaps, "test9 added", hasEvent(discovery.EventAdded, "test9"))
	s = recvSnap(t, snaps, "test1 gone", func(s discovery.Snapshot) bool { return s.Infrastructure["test1"] == nil })
	if pub.Instance() != "disnix-test9" || s.Infrastructure["test9"] == nil {
		t.Fatalf("renamed: instance %s, infrastructure %v", pub.Instance(), s.Infrastructure)
	}

	// Goodbye removes it.
	stop()
	s = recvSnap(t, snaps, "test9 removed", hasEvent(discovery.EventRemoved, "test9"))
	if s.Events[len(s.Events)-1].Reason != discovery.ReasonGoodbye {
		t.Fatalf("removed for %q, want goodbye", s.Events[len(s.Events)-1].Reason)
	}
}

// Two machines claiming the same hostname: the second publisher finds the
// conflict while probing and refuses to start.
func TestMDNSNameConflict(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddx").RerunTest(t)
		return
	}
	log := zaptest.NewLogger(t)
	first, _ := discovery.NewPublisher(discovery.PublisherConfig{Interfaces: []string{"lo"}, Target: target(t, "dup", map[string]any{"hostname": "dup", "mem": 1}), Logger: log})
	runPublisher(t, first)
	snaps := runSource(t, mustSource(t, fastBrowser("lo")))
	recvSnap(t, snaps, "dup added", hasEvent(discovery.EventAdded, "dup"))
	second, _ := discovery.NewPublisher(discovery.PublisherConfig{Interfaces: []string{"lo"}, Target: target(t, "dup", map[string]any{"hostname": "dup", "mem": 2}), Logger: log})
	err := second.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "announced by another machine") {
		t.Fatalf("second publisher: %v, want a name conflict", err)
	}
}

// Compact announcements: properties too large for TXT are fetched from the
// endpoint and checked against the hash; a dead endpoint removes the target.
func TestMDNSCompactAndProbe(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddc").RerunTest(t)
		return
	}
	log := zaptest.NewLogger(t)
	props := map[string]any{"hostname": "big"}
	for i := 0; i < 30; i++ {
		props[fmt.Sprintf("property%02d", i)] = strings.Repeat("x", 60)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := discovery.NewPublisher(discovery.PublisherConfig{
		Interfaces: []string{"lo"}, Target: target(t, "big", props),
		Endpoint: "http://" + ln.Addr().String(), Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: discovery.TargetHandler(pub.Target)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	stopPub := runPublisher(t, pub)

	cfg := fastBrowser("lo")
	cfg.Logger = log
	snaps := runSource(t, mustSource(t, cfg))
	s := recvSnap(t, snaps, "big added", hasEvent(discovery.EventAdded, "big"))
	if _, compact := pub.TXT(); !compact {
		t.Fatal("publisher did not use the compact form")
	}
	got := s.Infrastructure["big"]
	if len(got.Properties) != 32 || got.Properties["property07"] != strings.Repeat("x", 60) || got.Properties[discovery.AgentURLProperty] != "http://"+ln.Addr().String() {
		t.Fatalf("big seen with %d properties: %v", len(got.Properties), got.Properties)
	}
	// The agent dies but the mDNS announcement stays: the probe removes it.
	srv.Close()
	s = recvSnap(t, snaps, "big removed", hasEvent(discovery.EventRemoved, "big"))
	if r := s.Events[len(s.Events)-1].Reason; r != discovery.ReasonProbeFailed {
		t.Fatalf("removed for %q, want probe-failed", r)
	}
	stopPub()
}

func mustSource(t testing.TB, cfg discovery.BrowserConfig) *discovery.MDNSSource {
	t.Helper()
	src, err := discovery.NewMDNSSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// watcher runs dydisnix-geninfra-mdns --watch and decodes its snapshots,
// stamping each with the time it arrived.
type watcher struct {
	snaps chan stampedSnap
}

type stampedSnap struct {
	discovery.Snapshot
	got time.Time
}

func startWatcher(t testing.TB, cmd *exec.Cmd) *watcher {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t, "browser"}
	netns.StartT(t, cmd)
	w := &watcher{snaps: make(chan stampedSnap, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var s discovery.Snapshot
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				continue
			}
			w.snaps <- stampedSnap{s, time.Now()}
		}
		close(w.snaps)
	}()
	return w
}

// eventDeadline bounds every wait for a snapshot of the browser process: a
// deadline that keeps a broken test from hanging, not a speed target (the
// detection delays are measured by BenchmarkDetection).
const eventDeadline = 2 * time.Minute

func (w *watcher) wait(t testing.TB, what string, ok func(discovery.Snapshot) bool) stampedSnap {
	t.Helper()
	deadline := time.After(eventDeadline)
	for {
		select {
		case s, open := <-w.snaps:
			if !open {
				t.Fatalf("waiting for %s: browser exited", what)
			}
			if ok(s.Snapshot) {
				return s
			}
		case <-deadline:
			t.Fatalf("waiting for %s: nothing after %v", what, eventDeadline)
		}
	}
}

type testWriter struct {
	t      testing.TB
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Logf("%s: %s", w.prefix, line)
	}
	return len(p), nil
}

func writeJSON(t testing.TB, file string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.WriteFileAtomic(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// One namespace, separate processes: the commands themselves.
func TestMDNSOneNamespaceAcrossProcesses(t *testing.T) {
	bin := commands(t)
	ns := netns.NewT(t, "ddp")
	dir := t.TempDir()
	props := filepath.Join(dir, "test1.json")
	writeJSON(t, props, map[string]any{"properties": map[string]any{"hostname": "test1", "zone": "a"}})
	ctx := context.Background()
	w := startWatcher(t, ns.Command(ctx, bin+"/dydisnix-geninfra-mdns", "--watch", "--interface", "lo", "--browse-interval", "0.5", "-t", "0.5", "--debounce", "100ms"))
	pub := ns.Command(ctx, bin+"/dydisnix-publishinfra", "--interface", "lo", "--properties", props)
	pub.Stderr = testWriter{t, "publisher"}
	exited := netns.StartT(t, pub)
	s := w.wait(t, "test1 added", hasEvent(discovery.EventAdded, "test1"))
	if s.Infrastructure["test1"].Properties["zone"] != "a" {
		t.Fatalf("test1: %v", s.Infrastructure["test1"].Properties)
	}
	pub.Process.Signal(syscall.SIGTERM)
	<-exited
	s = w.wait(t, "test1 removed", hasEvent(discovery.EventRemoved, "test1"))
	if r := s.Events[0].Reason; r != discovery.ReasonGoodbye {
		t.Fatalf("removed for %q, want goodbye", r)
	}
}
