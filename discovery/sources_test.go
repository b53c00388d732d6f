package discovery

import (
	"context"
	"github.com/dydisnix/dydisnix/internal/clock"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dydisnix/dydisnix/model"
)

func waitSnap(t *testing.T, ch <-chan Snapshot, what string) Snapshot {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("waiting for %s: timed out", what)
	}
	return Snapshot{}
}

// waitTimer waits until the source goroutine has armed a timer on the fake clock.
func waitTimer(t *testing.T, c *clock.Fake) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() bool { return c.Pending() > 0 }, "the source never armed a timer")
}

func TestCommandSource(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		testenv.Missing(t, "nix-instantiate is not installed")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "infra.out")
	write := func(s string) {
		if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"test1": {"properties": {"hostname": "test1", "mem": "1"}}}`)
	t.Setenv(GeninfraEnv, "cat "+out)
	src, err := NewCommandSource("", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Unix(0, 0))
	src.Clock, src.Logger = clk, zaptest.NewLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Snapshot)
	go src.Run(ctx, ch)

	// The first run is due at once (a zero timer fires immediately).
	s := waitSnap(t, ch, "first snapshot")
	if len(s.Infrastructure) != 1 || s.Infrastructure["test1"].Properties["mem"] != "1" {
		t.Fatalf("first: %v", s.Infrastructure)
	}
	// The original generators print Nix: a changed and an added target.
	write(`{ test1 = { properties = { hostname = "test1"; mem = "2"; }; }; test2 = { properties.hostname = "test2"; }; }`)
	waitTimer(t, clk)
	clk.Advance(time.Minute)
	s = waitSnap(t, ch, "second snapshot")
	got := evStrings(s.Events)
	want := []string{"changed test1 generated", "added test2 generated"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	// A failing generator keeps the model; the next good output with a
	// removal is reported.
	write(`{ broken`)
	waitTimer(t, clk)
	clk.Advance(time.Minute)
	waitTimer(t, clk) // the failed run is over
	write(`{"test2": {"properties": {"hostname": "test2"}}}`)
	clk.Advance(time.Minute)
	s = waitSnap(t, ch, "third snapshot")
	if got := evStrings(s.Events); !reflect.DeepEqual(got, []string{"removed test1 generated"}) {
		t.Fatalf("events %q", got)
	}
}

func TestCommandSourceNeedsCommand(t *testing.T) {
	t.Setenv(GeninfraEnv, "")
	if _, err := NewCommandSource("", 0); err == nil {
		t.Fatal("no generator accepted")
	}
}

func TestFileSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "infrastructure.json")
	write := func(s string) {
		if err := model.WriteFileAtomic(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"test1": {"properties": {"hostname": "test1", "zone": "a"}}}`)
	src := NewFileSource(file)
	src.Logger = zaptest.NewLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Snapshot)
	go src.Run(ctx, ch)
	s := waitSnap(t, ch, "first snapshot")
	if s.Infrastructure["test1"].Properties["zone"] != "a" {
		t.Fatalf("first: %v", s.Infrastructure)
	}
	write(`{"test1": {"properties": {"hostname": "test1", "zone": "b"}}}`)
	s = waitSnap(t, ch, "change")
	if got := evStrings(s.Events); !reflect.DeepEqual(got, []string{"changed test1 file-changed"}) {
		t.Fatalf("events %q", got)
	}
	write(`{"test1": `) // broken: ignored
	write(`{"test2": {"properties": {"hostname": "test2"}}}`)
	s = waitSnap(t, ch, "replacement")
	if got := evStrings(s.Events); !reflect.DeepEqual(got, []string{"removed test1 file-changed", "added test2 file-changed"}) {
		t.Fatalf("events %q", got)
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := model.Infrastructure{"x": {Name: "x", Properties: map[string]any{"m": "1"}}, "y": {Name: "y", Properties: map[string]any{}}}
	b := model.Infrastructure{"x": {Name: "x", Properties: map[string]any{"m": "2"}}, "z": {Name: "z", Properties: map[string]any{}}}
	got := evStrings(Diff(a, b, "r", time.Time{}))
	want := []string{"changed x r", "removed y r", "added z r"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff = %q, want %q", got, want)
	}
}
