package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The adaptation benchmarks measure the speed targets on the real
// testbed: real agents in network namespaces, real mDNS, a real
// dydisnix-self-adapt process. 10 services on 5 machines:
//
//   - BenchmarkAdaptGracefulStop: graceful stop → redeploy start (< 1 s),
//     and → every service healthy again (< 5 s);
//   - BenchmarkAdaptCrash: kill -9 → detection (< 3 s), and → every service
//     healthy again (< 5 s);
//   - BenchmarkAdaptPowerCut: as the crash, but the link goes down, so
//     nothing answers (no target in the issue; a real crash looks so);
//   - BenchmarkAdaptIdle: idle CPU (< 1 %) and RSS of the coordinator
//     (< 40 MB) and of an agent (< 20 MB).
//
// They need root. Run them with
//
//	go test -run '^$' -bench BenchmarkAdapt -benchtime 1x ./testbed/
//
// Each b.Loop iteration removes one machine and (untimed) adds a fresh one,
// so -benchtime Nx costs about 5–15 s per iteration. Set DYDISNIX_BENCH_DIR to
// keep the harness directories (coordinator log self-adapt.log, agent logs).

var (
	benchBuildOnce sync.Once
	benchBinDir    string
	benchBuildErr  error
)

// benchBinaries compiles the commands and example services once per test
// binary into $TMPDIR/dydisnix-bench-bin (the e2e tests' buildBinaries takes
// a *testing.T).
func benchBinaries(b *testing.B) string {
	b.Helper()
	benchBuildOnce.Do(func() {
		// One fixed directory, rebuilt by every run, so that repeated
		// benchmark runs do not pile up copies of the binaries.
		dir := filepath.Join(os.TempDir(), "dydisnix-bench-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			benchBuildErr = err
			return
		}
		benchBinDir = dir
		pkgs := [][2]string{
			{"dydisnix-agent", "../cmd/dydisnix-agent"},
			{"dydisnix-self-adapt", "../cmd/dydisnix-self-adapt"},
		}
		// The example services go where the demo's services model expects
		// them, whatever the layout of the bin directory is.
		model := DemoServicesModel(dir)
		built := map[string]bool{}
		for _, s := range demoServices {
			pkg, _ := model[s.name].(map[string]any)["pkg"].(string)
			if pkg == "" || built[pkg] {
				continue
			}
			built[pkg] = true
			rel, err := filepath.Rel(dir, pkg)
			if err != nil {
				benchBuildErr = err
				return
			}
			pkgs = append(pkgs, [2]string{rel, "./services/" + s.bin})
		}
		for _, p := range pkgs {
			out := filepath.Join(dir, p[0])
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				benchBuildErr = err
				return
			}
			log, err := exec.Command("go", "build", "-o", out, p[1]).CombinedOutput()
			if err != nil {
				benchBuildErr = fmt.Errorf("go build %s: %v: %s", p[1], err, log)
				return
			}
		}
	})
	if benchBuildErr != nil {
		b.Fatal(benchBuildErr)
	}
	return benchBinDir
}

// benchServicesModel is the example system plus three more Chord nodes:
// 10 services, each with a health check.
func benchServicesModel(binDir string) map[string]any {
	svcs := DemoServicesModel(binDir)
	chord := svcs["chord-bootstrap"].(map[string]any)["pkg"]
	for i, port := range []int{7008, 7009, 7010} {
		name := fmt.Sprintf("chord-node%d", i+3)
		svcs[name] = map[string]any{
			"name": name, "type": "process", "pkg": chord,
			"port": port, "dependsOn": []string{"chord-bootstrap"},
			"healthCheck": fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
		}
	}
	return svcs
}

func newBenchHarness(b *testing.B, cfg HarnessConfig) *Harness {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces (CI runs as root)")
	}
	cfg.BinDir = benchBinaries(b)
	if keep := os.Getenv("DYDISNIX_BENCH_DIR"); keep != "" {
		cfg.Dir = filepath.Join(keep, strings.ReplaceAll(b.Name(), "/", "_"))
		os.RemoveAll(cfg.Dir)
	} else {
		cfg.Dir = b.TempDir()
	}
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	h, err := NewHarness(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("coordinator log:\n%s", h.LoopLog(40))
		}
		h.Close()
	})
	if err := h.StartLoop(); err != nil {
		b.Fatal(err)
	}
	return h
}

// benchSettle waits for Settled, bounded so that a broken loop fails the
// benchmark within a minute or so instead of hanging the run.
func benchSettle(b *testing.B, h *Harness, after int, avoid string) (*Status, time.Time) {
	b.Helper()
	timeout := 45 * time.Second
	if after == 0 {
		timeout = 90 * time.Second // the first deploy starts every service
	}
	st, at, err := h.Settled(context.Background(), after, avoid, timeout)
	if err != nil {
		b.Fatal(err)
	}
	return st, at
}

// deployWatch polls /status every 20 ms and keeps the first deploy report
// after seq, so that a later deploy cannot hide the one the event caused.
type deployWatch struct {
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	first     *Status
	deploying time.Time // when phase "deploying" was first seen
}

func watchDeploys(h *Harness, after int) *deployWatch {
	w := &deployWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := h.Status(); err == nil {
				w.mu.Lock()
				if st.Phase == "deploying" && w.deploying.IsZero() {
					w.deploying = time.Now()
				}
				if w.first == nil && st.Seq() > after {
					w.first = st
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *deployWatch) end() (*Status, time.Time) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first, w.deploying
}

// waitInUse waits until the coordinator has discovered name and deployed
// with it (the machine is in its infrastructure), then until the system is
// settled.
func waitInUse(b *testing.B, h *Harness, name string, after int) *Status {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := h.Status()
		if err == nil && slices.Contains(st.Discovered, name) && st.Seq() > after {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s was not discovered and deployed with within 60 s (status error %v)\n%s", name, err, h.LoopLog(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, _ := benchSettle(b, h, after, "")
	return st
}

type adaptFigures struct {
	detect, start, healthy []time.Duration
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s / time.Duration(len(ds))
}

// How benchAdapt removes a machine.
type removal int

const (
	gracefulStop removal = iota // SIGTERM to the agent: goodbye, drain
	crash                       // kill -9 of every process: the kernel still answers (RST)
	partition                   // the link goes down: nothing answers (power cut, cable)
)

var removalNames = map[removal]string{gracefulStop: "stop", crash: "kill", partition: "cut"}

// benchAdapt removes the machine that holds kvstore once per iteration and
// measures, from the event: detection (the deploy's ChangeAt), redeploy
// start (its Started) and every service healthy again off that machine
// (the harness's Settled time).
func benchAdapt(b *testing.B, how removal, loopArgs ...string) {
	h := newBenchHarness(b, HarnessConfig{Services: benchServicesModel(benchBinaries(b)), Machines: 5, LoopArgs: loopArgs})
	st, _ := benchSettle(b, h, 0, "")
	var f adaptFigures
	next := 6
	for b.Loop() {
		victim := st.TargetOf("kvstore")
		before := st.Seq()
		w := watchDeploys(h, before)
		stopped := make(chan error, 1)
		t0 := time.Now()
		switch how {
		case gracefulStop:
			go func() { stopped <- h.TB.Stop(victim) }()
		case crash:
			stopped <- h.TB.Crash(victim)
		case partition:
			stopped <- h.TB.Partition(victim)
		}
		st2, healthyAt := benchSettle(b, h, before, victim)
		b.StopTimer()
		first, deploying := w.end()
		if err := <-stopped; err != nil {
			b.Fatal(err)
		}
		if first == nil {
			first = st2
		}
		ld := first.LastDeploy
		if ld.Seq != before+1 || ld.Result != "success" {
			b.Logf("first deploy after the event: #%d %s %s; settled at #%d", ld.Seq, ld.Result, ld.Error, st2.Seq())
		}
		f.detect = append(f.detect, ld.ChangeAt.Sub(t0))
		f.start = append(f.start, ld.Started.Sub(t0))
		f.healthy = append(f.healthy, healthyAt.Sub(t0))
		b.Logf("%s %s: detected %v, redeploy started %v (phase deploying seen %v), healthy %v; causes %v, moved %v",
			removalNames[how], victim,
			ld.ChangeAt.Sub(t0).Round(time.Millisecond), ld.Started.Sub(t0).Round(time.Millisecond),
			deploying.Sub(t0).Round(time.Millisecond), healthyAt.Sub(t0).Round(time.Millisecond), ld.Causes, ld.Moved)

		// A fresh machine for the next iteration (not timed).
		name := fmt.Sprintf("machine%d", next)
		next++
		if _, err := h.TB.Add(name, nil); err != nil {
			b.Fatal(err)
		}
		st = waitInUse(b, h, name, st2.Seq())
		b.StartTimer()
	}
	prefix := removalNames[how]
	b.ReportMetric(ms(mean(f.detect)), prefix+"-to-detect-ms")
	b.ReportMetric(ms(mean(f.start)), prefix+"-to-redeploy-ms")
	b.ReportMetric(ms(mean(f.healthy)), prefix+"-to-healthy-ms")
	b.ReportMetric(ms(slices.Max(f.healthy)), prefix+"-to-healthy-max-ms")
}

// BenchmarkAdaptGracefulStop: graceful stop of the machine holding the
// stateful service → redeploy start (target < 1 s) and → all 10 services
// healthy on the remaining machines (target < 5 s).
func BenchmarkAdaptGracefulStop(b *testing.B) { benchAdapt(b, gracefulStop) }

// BenchmarkAdaptCrash: kill -9 of every process of the machine holding the
// stateful service → detection (target < 3 s) and → all 10 services healthy
// on the remaining machines (target < 5 s).
func BenchmarkAdaptCrash(b *testing.B) { benchAdapt(b, crash) }

// BenchmarkAdaptPowerCut: the link of the machine holding the stateful
// service goes down, so (unlike kill -9, where the machine's kernel still
// refuses connections) every liveness probe runs into its timeout. The
// processes behind the cut keep running; the machine is not used again.
// The coordinator runs with the shipped snapshot schedule (@every 1m), so
// no snapshot is in flight: a snapshot request to a machine that vanished
// silently holds the deploy lock until its HTTP timeout (minutes), which
// blocks the redeploy (see docs/benchmarks-adapt.md).
func BenchmarkAdaptPowerCut(b *testing.B) {
	benchAdapt(b, partition, "--snapshot-schedule", "@every 1m")
}

// BenchmarkAdaptIdle samples, after the system settled, the CPU time
// (utime+stime) of the coordinator and of one agent over a 10 s idle window
// per iteration, and their RSS at its end. Targets: < 1 % CPU, RSS < 40 MB
// (coordinator) and < 20 MB (agent). "default" runs the coordinator with
// the shipped snapshot schedule (@every 1m); "snapshot-2s" with the
// harness's e2e schedule (@every 2s, a snapshot of kvstore every 2 s).
func BenchmarkAdaptIdle(b *testing.B) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"default", []string{"--snapshot-schedule", "@every 1m"}},
		{"snapshot-2s", nil},
	} {
		b.Run(c.name, func(b *testing.B) { benchIdle(b, c.args) })
	}
}

func benchIdle(b *testing.B, loopArgs []string) {
	h := newBenchHarness(b, HarnessConfig{Services: benchServicesModel(benchBinaries(b)), Machines: 5, LoopArgs: loopArgs})
	st, _ := benchSettle(b, h, 0, "")
	h.mu.Lock()
	coordPid := h.loop.Process.Pid
	h.mu.Unlock()
	// The agent of the machine that runs kvstore (and webfront) works the
	// most: health checks, and the snapshots.
	m, ok := h.TB.Machine(st.TargetOf("kvstore"))
	if !ok || m.cmd == nil {
		b.Fatalf("no machine for kvstore")
	}
	agentPid := m.cmd.Process.Pid
	if n := procName(coordPid); n != "dydisnix-self-a" && n != "dydisnix-self-adapt" {
		b.Fatalf("coordinator pid %d is %q", coordPid, n)
	}
	if n := procName(agentPid); n != "dydisnix-agent" {
		b.Fatalf("agent pid %d is %q", agentPid, n)
	}
	// Let the first deploy's aftermath (health checks, goroutines ending)
	// pass before measuring.
	time.Sleep(3 * time.Second)
	hz := clockTicks()
	const window = 10 * time.Second
	var coordCPU, agentCPU, coordRSS, agentRSS []float64
	seq := st.Seq()
	for b.Loop() {
		c0, err1 := procCPU(coordPid)
		a0, err2 := procCPU(agentPid)
		t0 := time.Now()
		time.Sleep(window)
		c1, err3 := procCPU(coordPid)
		a1, err4 := procCPU(agentPid)
		el := time.Since(t0).Seconds()
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				b.Fatal(err)
			}
		}
		cr, err := procRSS(coordPid)
		if err != nil {
			b.Fatal(err)
		}
		ar, err := procRSS(agentPid)
		if err != nil {
			b.Fatal(err)
		}
		coordCPU = append(coordCPU, 100*float64(c1-c0)/hz/el)
		agentCPU = append(agentCPU, 100*float64(a1-a0)/hz/el)
		coordRSS = append(coordRSS, cr)
		agentRSS = append(agentRSS, ar)
	}
	if st2, err := h.Status(); err == nil && st2.Seq() != seq {
		b.Logf("the window was not idle: deploys #%d..#%d happened", seq+1, st2.Seq())
	}
	avg := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.ReportMetric(avg(coordCPU), "coordinator-cpu-%")
	b.ReportMetric(avg(agentCPU), "agent-cpu-%")
	b.ReportMetric(slices.Max(coordRSS), "coordinator-rss-MB")
	b.ReportMetric(slices.Max(agentRSS), "agent-rss-MB")
}
