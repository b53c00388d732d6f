package discovery

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/dydisnix/dydisnix/internal/clock"
)

// FileWatcher reports changes of a set of files. It watches the files'
// directories, so editors' atomic renames and re-creations are seen.
type FileWatcher struct {
	w     *fsnotify.Watcher
	files map[string]bool // absolute, clean paths
	names string          // for errors
}

// NewFileWatcher starts watching files; changes made after it returns are
// reported by Run. Create it before reading the files, so that no change
// is missed.
func NewFileWatcher(files ...string) (*FileWatcher, error) {
	names := strings.Join(files, ", ")
	if len(files) == 0 {
		return nil, errors.New("watch: no file to watch")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", names, err)
	}
	fw := &FileWatcher{w: w, files: map[string]bool{}, names: names}
	dirs := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", f, err)
		}
		fw.files[abs] = true
		dir := filepath.Dir(abs)
		if dirs[dir] {
			continue
		}
		dirs[dir] = true
		if err := w.Add(dir); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: directory %s: %w", f, dir, err)
		}
	}
	return fw, nil
}

// Run sends on changed (without blocking; one pending signal is enough)
// whenever one of the files is written, created, renamed over or removed,
// until ctx ends. When the kernel's event queue overflowed, a change may
// have been missed: Run signals one. Any other watcher error ends Run with
// that error. Run closes the watcher when it returns.
func (fw *FileWatcher) Run(ctx context.Context, changed chan<- struct{}) error {
	defer fw.Close()
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.w.Events:
			if !ok {
				return nil
			}
			if fw.relevant(ev) {
				signal()
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				signal()
				continue
			}
			return fmt.Errorf("watch %s: %w", fw.names, err)
		}
	}
}

// runDebounced runs the watcher until ctx ends and calls reload once a
// burst of changes has been quiet for quiet on clk (nil: the wall clock),
// so that the several writes of one save give one reload. It returns the
// watcher's error, nil when ctx ends.
func (fw *FileWatcher) runDebounced(ctx context.Context, clk clock.Clock, quiet time.Duration, reload func(context.Context)) error {
	clk = clock.OrReal(clk)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	watchErr := make(chan error, 1)
	go func() { watchErr <- fw.Run(ctx, changed) }()
	t := clk.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-watchErr:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-changed:
			t.Reset(quiet)
		case <-t.C():
			reload(ctx)
		}
	}
}

// relevant reports whether ev changes one of the files.
func (fw *FileWatcher) relevant(ev fsnotify.Event) bool {
	return fw.files[filepath.Clean(ev.Name)] &&
		ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0
}

// Close stops watching; it is for a caller that does not call Run (or stops
// before it). Closing twice is harmless.
func (fw *FileWatcher) Close() error { return fw.w.Close() }
