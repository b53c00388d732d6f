package discovery

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// WatchFile sends on changed (without blocking; one pending signal is
// enough) whenever file is written, created, renamed over or removed. It
// watches the file's directory, so editors and atomic renames are seen. It
// returns when ctx ends.
func WatchFile(ctx context.Context, file string, changed chan<- struct{}) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", file, err)
	}
	defer w.Close()
	abs, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("watch %s: %w", file, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch %s: %w", file, err)
	}
	base := filepath.Base(abs)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Base(ev.Name) != base || ev.Op == fsnotify.Chmod {
				continue
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			return fmt.Errorf("watch %s: %w", file, err)
		}
	}
}
