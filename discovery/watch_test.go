package discovery

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestFileWatcherRelevant(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "sub", "b.nix")
	if err := os.Mkdir(filepath.Dir(b), 0o755); err != nil {
		t.Fatal(err)
	}
	fw, err := NewFileWatcher(a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	for _, tc := range []struct {
		name string
		ev   fsnotify.Event
		want bool
	}{
		{"write", fsnotify.Event{Name: a, Op: fsnotify.Write}, true},
		{"create in the second directory", fsnotify.Event{Name: b, Op: fsnotify.Create}, true},
		{"renamed away", fsnotify.Event{Name: a, Op: fsnotify.Rename}, true},
		{"removed", fsnotify.Event{Name: b, Op: fsnotify.Remove}, true},
		{"chmod only", fsnotify.Event{Name: a, Op: fsnotify.Chmod}, false},
		{"write and chmod", fsnotify.Event{Name: a, Op: fsnotify.Write | fsnotify.Chmod}, true},
		{"another file", fsnotify.Event{Name: filepath.Join(dir, "a.json~"), Op: fsnotify.Write}, false},
		{"same name elsewhere", fsnotify.Event{Name: filepath.Join(dir, "b.nix"), Op: fsnotify.Write}, false},
	} {
		if got := fw.relevant(tc.ev); got != tc.want {
			t.Errorf("%s: relevant = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestFileWatcherRun changes watched files the ways editors and tools do,
// each on a fresh watcher, and waits for the signal; the deadline only
// keeps a broken watcher from hanging the test.
func TestFileWatcherRun(t *testing.T) {
	t.Parallel()
	write := func(f, s string) error { return os.WriteFile(f, []byte(s), 0o644) }
	for _, tc := range []struct {
		name  string
		setup func(a, b string) error // before the watcher starts
		do    func(a, b string) error
	}{
		{"create", nil, func(a, _ string) error { return write(a, "1") }},
		{"write in the second directory", func(_, b string) error { return write(b, "1") },
			func(_, b string) error { return write(b, "2") }},
		{"rename over", func(a, _ string) error { return write(a, "1") }, func(a, _ string) error {
			tmp := a + ".tmp"
			if err := write(tmp, "2"); err != nil {
				return err
			}
			return os.Rename(tmp, a)
		}},
		{"remove", func(_, b string) error { return write(b, "1") }, func(_, b string) error { return os.Remove(b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "sub", "b.nix")
			if err := os.Mkdir(filepath.Dir(b), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				if err := tc.setup(a, b); err != nil {
					t.Fatal(err)
				}
			}
			fw, err := NewFileWatcher(a, b)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			changed := make(chan struct{}, 1)
			done := make(chan error, 1)
			go func() { done <- fw.Run(ctx, changed) }()
			if err := tc.do(a, b); err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
			case <-time.After(time.Minute):
				t.Error("no change signalled")
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

func TestNewFileWatcherErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewFileWatcher(); err == nil {
		t.Error("watching nothing: want an error")
	}
	missing := filepath.Join(t.TempDir(), "no", "such", "file")
	if _, err := NewFileWatcher(missing); err == nil {
		t.Errorf("watching %s in a missing directory: want an error", missing)
	}
}
