package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Bounds of GET /v1/logs/<service>?tail=N.
const (
	// DefaultLogTail is the number of lines served without ?tail.
	DefaultLogTail = 100
	// MaxLogTail is the largest ?tail accepted.
	MaxLogTail = 10000
	// maxLogRead bounds how much of each log file is read to find the tail.
	maxLogRead = 4 << 20
)

// rotateLog rotates file when it is larger than max bytes: file.N-1 becomes
// file.N (keep copies at most), ..., file becomes file.1. The file itself
// is copied and truncated rather than renamed ("copytruncate"): the
// supervised process, which may outlive the agent, keeps writing to the
// descriptor it holds (opened with O_APPEND, so it writes at the new end).
// Lines written between the copy and the truncation are lost. It reports
// whether it rotated.
func rotateLog(file string, max int64, keep int) (bool, error) {
	fi, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Size() <= max {
		return false, nil
	}
	if keep < 1 {
		keep = 1
	}
	os.Remove(fmt.Sprintf("%s.%d", file, keep))
	for i := keep - 1; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", file, i), fmt.Sprintf("%s.%d", file, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("rotate %s: %w", file, err)
		}
	}
	if err := copyFile(file, file+".1"); err != nil {
		return false, fmt.Errorf("rotate %s: %w", file, err)
	}
	if err := os.Truncate(file, 0); err != nil {
		return false, fmt.Errorf("rotate %s: %w", file, err)
	}
	return true, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RotateLogs rotates every service log larger than Config.LogMaxBytes. The
// agent calls it every Config.LogCheck and before each start of a process.
func (a *Agent) RotateLogs() {
	ents, err := os.ReadDir(a.path("logs"))
	if err != nil {
		a.log.Warn("rotate service logs", zap.Error(err))
		return
	}
	for _, de := range ents {
		name := de.Name()
		if len(name) < 5 || name[len(name)-4:] != ".log" {
			continue
		}
		if _, err := rotateLog(a.path("logs", name), a.cfg.LogMaxBytes, a.cfg.LogKeep); err != nil {
			a.log.Warn("rotate service log", zap.String("file", name), zap.Error(err))
		}
	}
}

// rotateLoop runs RotateLogs every LogCheck until stop is closed.
func (a *Agent) rotateLoop(stop <-chan struct{}) {
	t := time.NewTicker(a.cfg.LogCheck)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			a.RotateLogs()
		}
	}
}

// parseTail reads the ?tail parameter: DefaultLogTail when empty, else a
// number from 1 to MaxLogTail.
func parseTail(s string) (int, error) {
	if s == "" {
		return DefaultLogTail, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLogTail {
		return 0, &httpError{400, fmt.Sprintf("tail %q: expected a number of lines from 1 to %d", s, MaxLogTail)}
	}
	return n, nil
}

// ServiceLog returns the last n lines of a service's output (the newest
// rotated copy included when the current file holds fewer).
func (a *Agent) ServiceLog(service string, n int) ([]byte, error) {
	if err := a.checkService(service); err != nil {
		return nil, err
	}
	file := a.path("logs", service+".log")
	cur, err := readEnd(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &httpError{404, fmt.Sprintf("service %s: no log on this target", service)}
	}
	if err != nil {
		return nil, err
	}
	if bytes.Count(cur, []byte("\n")) < n {
		if old, err := readEnd(file + ".1"); err == nil {
			cur = append(old, cur...)
		}
	}
	return lastLines(cur, n), nil
}

// readEnd reads at most the last maxLogRead bytes of file.
func readEnd(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if off := fi.Size() - maxLogRead; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, maxLogRead))
}

// lastLines returns the last n lines of b (a last line without newline
// counts).
func lastLines(b []byte, n int) []byte {
	start := len(b)
	if start > 0 && b[start-1] == '\n' {
		start--
	}
	for ; n > 0; n-- {
		j := bytes.LastIndexByte(b[:start], '\n')
		if j < 0 {
			return b
		}
		start = j
	}
	return b[start+1:]
}
