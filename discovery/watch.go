package discovery

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// FileWatcher reports changes of one file. It watches the file's
// directory, so editors' atomic renames and re-creations are seen.
type FileWatcher struct {
	w    *fsnotify.Watcher
	base string
	file string
}

// NewFileWatcher starts watching file; changes made after it returns are
// reported by Run.
func NewFileWatcher(file string) (*FileWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", file, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", file, err)
	}
	return &FileWatcher{w: w, base: filepath.Base(abs), file: file}, nil
}

// Run sends on changed (without blocking; one pending signal is enough)
// whenever the file is written, created, renamed over or removed, until ctx
// ends. It closes the watcher when it returns.
func (fw *FileWatcher) Run(ctx context.Context, changed chan<- struct{}) error {
	defer fw.w.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.w.Events:
			if !ok {
				return nil
			}
			if filepath.Base(ev.Name) != fw.base || ev.Op == fsnotify.Chmod {
				continue
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return nil
			}
			return fmt.Errorf("watch %s: %w", fw.file, err)
		}
	}
}

// WatchFile is NewFileWatcher followed by Run.
func WatchFile(ctx context.Context, file string, changed chan<- struct{}) error {
	fw, err := NewFileWatcher(file)
	if err != nil {
		return err
	}
	return fw.Run(ctx, changed)
}
