package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/dydisnix/dydisnix/model"
)

// pidRecord is written to run/<key>.json so that a restarted agent finds
// its processes again: the pid alone could have been reused, so the start
// time (field 22 of /proc/<pid>/stat) and the executable are checked too.
type pidRecord struct {
	Pid       int    `json:"pid"`
	StartTime string `json:"startTime"`
	Exe       string `json:"exe"`
}

// proc supervises one process service: it starts the process in its own
// process group, restarts it with exponential backoff when it exits, and
// kills the whole group when stopped.
type proc struct {
	key     string
	name    string
	exe     string
	args    []string
	env     []string
	dir     string
	logFile string
	pidFile string
	health  string
	grace   time.Duration
	log     *zap.Logger
	metrics *metrics
	rotate  func(file string) // rotates the log when it is too large

	mu       sync.Mutex
	pid      int
	running  bool
	restarts int
	exits    int
	lastErr  string
	exitText string        // how the last process started here ended
	started  chan struct{} // closed when the first start attempt finished
	stopCh   chan struct{}
	detachCh chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	detOnce  sync.Once
}

func (p *proc) status() (pid int, running bool, restarts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.running, p.restarts
}

// run is the supervision loop. adopt is a process found again after an
// agent restart (0 = none).
func (p *proc) run(adopt int) {
	defer close(p.done)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 10 * time.Second
	bo.MaxElapsedTime = 0
	first := true
	for {
		var exited <-chan struct{}
		unwatch := func() {}
		var startedAt time.Time
		if adopt > 0 {
			p.setRunning(adopt, true)
			exited, unwatch = watchExit(adopt)
			adopt = 0
		} else {
			ch, pid, err := p.start()
			if err != nil {
				p.mu.Lock()
				p.lastErr = err.Error()
				p.exits++
				restarts := p.restarts
				p.mu.Unlock()
				p.metrics.exits.WithLabelValues(p.name).Inc()
				p.log.Warn("service failed to start", zap.String("service", p.name), zap.Int("restarts", restarts), zap.Error(err))
			} else {
				p.setRunning(pid, true)
				exited = ch
			}
		}
		startedAt = time.Now()
		if first {
			first = false
			close(p.started)
		}
		if exited != nil {
			select {
			case <-p.detachCh:
				unwatch()
				return
			case <-p.stopCh:
				p.mu.Lock()
				pid := p.pid
				p.mu.Unlock()
				if !terminate(pid, exited, p.grace) {
					p.mu.Lock()
					p.lastErr = fmt.Sprintf("process %d did not exit after SIGKILL", pid)
					p.mu.Unlock()
				}
				unwatch()
				p.setRunning(0, false)
				os.Remove(p.pidFile)
				return
			case <-exited:
				// The main process died: kill what is left of its group so
				// that no orphan outlives it (the restart makes a new group).
				p.mu.Lock()
				pgid, status, restarts := p.pid, p.exitText, p.restarts
				p.mu.Unlock()
				if status == "" {
					status = "unknown (a process adopted after an agent restart)"
				}
				p.metrics.exits.WithLabelValues(p.name).Inc()
				p.log.Warn("service exited", zap.String("service", p.name), zap.Int("pid", pgid),
					zap.String("exitStatus", status), zap.Int("restarts", restarts), zap.Duration("ran", time.Since(startedAt)))
				if pgid > 0 {
					syscall.Kill(-pgid, syscall.SIGKILL)
				}
				p.setRunning(0, false)
				p.mu.Lock()
				p.exits++
				p.mu.Unlock()
			}
		}
		if time.Since(startedAt) > 30*time.Second {
			bo.Reset()
		}
		delay := bo.NextBackOff()
		select {
		case <-p.detachCh:
			return
		case <-p.stopCh:
			os.Remove(p.pidFile)
			return
		case <-time.After(delay):
		}
		p.mu.Lock()
		p.restarts++
		restarts := p.restarts
		p.mu.Unlock()
		p.metrics.restarts.WithLabelValues(p.name).Inc()
		p.log.Warn("restarting service", zap.String("service", p.name), zap.Int("restarts", restarts), zap.Duration("after", delay))
	}
}

func (p *proc) setRunning(pid int, running bool) {
	p.mu.Lock()
	p.pid, p.running = pid, running
	p.mu.Unlock()
}

// start starts the process in a new process group and returns a channel
// closed when it exits.
func (p *proc) start() (<-chan struct{}, int, error) {
	p.rotate(p.logFile)
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, err
	}
	p.mu.Lock()
	env := p.env
	p.mu.Unlock()
	var cmd *exec.Cmd
	// An artifact just written may still be open for writing in a child
	// another goroutine forked before its exec: "text file busy" then
	// passes within moments, so the start is tried a few times.
	for try := 0; ; try++ {
		cmd = exec.Command(p.exe, p.args...)
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, p.dir, logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err = cmd.Start(); !errors.Is(err, syscall.ETXTBSY) || try == 20 {
			break
		}
		time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
	}
	if err != nil {
		logf.Close()
		return nil, 0, fmt.Errorf("start %s: %w", p.exe, err)
	}
	logf.Close()
	pid := cmd.Process.Pid
	rec := pidRecord{Pid: pid, StartTime: procStartTime(pid), Exe: p.exe}
	if b, err := json.Marshal(rec); err == nil {
		model.WriteFileAtomic(p.pidFile, b, 0o600)
	}
	ch := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if err != nil {
			p.lastErr = err.Error()
		}
		p.exitText = cmd.ProcessState.String()
		p.mu.Unlock()
		close(ch)
	}()
	return ch, pid, nil
}

// terminate stops the process group of pid, whose exit closes exited:
// SIGTERM, then, when the process has not exited within grace, SIGKILL to
// the group, and at most grace more for the exit to show. What is left of
// the group after the process exited is killed too. It reports whether the
// exit was seen; it never waits longer than twice grace.
func terminate(pid int, exited <-chan struct{}, grace time.Duration) bool {
	if pid <= 0 {
		return true
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	syscall.Kill(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
		syscall.Kill(-pid, syscall.SIGKILL) // the rest of the group
		return true
	case <-t.C:
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	t.Reset(grace)
	select {
	case <-exited:
		return true
	case <-t.C:
		return false
	}
}

// stop stops supervision and kills the process group; it waits until the
// process is gone.
func (p *proc) stop() {
	p.stopOnce.Do(func() { close(p.stopCh) })
	<-p.done
}

// detach stops supervision without killing the process (agent shutdown
// that leaves services running for the next agent to find).
func (p *proc) detach() {
	p.detOnce.Do(func() { close(p.detachCh) })
	<-p.done
}

// watchExit returns a channel closed when process pid exits, for a
// process the agent did not start (adopted after an agent restart: no Wait
// reports its exit), and a function that ends the watch. The kernel reports
// the exit through a pidfd; only where pidfds are unavailable is the
// process polled (every 200 ms).
func watchExit(pid int) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		close(ch)
		return ch, func() {}
	}
	if err != nil {
		return pollExit(pid)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return pollExit(pid)
	}
	go func() {
		// A pidfd is readable once the process has exited; Read waits for
		// that in the runtime's poller and fails when f is closed.
		err := rc.Read(func(fd uintptr) bool {
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			return err == nil && n > 0
		})
		if err == nil {
			close(ch)
		}
		f.Close()
	}()
	return ch, func() { f.Close() }
}

// pollExit is watchExit without a pidfd.
func pollExit(pid int) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for alive(pid) {
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
		close(ch)
	}()
	var once sync.Once
	return ch, func() { once.Do(func() { close(stop) }) }
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// procStartTime returns field 22 (starttime) of /proc/<pid>/stat, or "".
func procStartTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// fields after ")" start at field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// findProcess returns the pid recorded in pidFile when that process still
// runs the same executable since the same start time, else 0.
func findProcess(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	var rec pidRecord
	if json.Unmarshal(b, &rec) != nil || rec.Pid <= 0 {
		return 0
	}
	if !alive(rec.Pid) || procStartTime(rec.Pid) != rec.StartTime {
		return 0
	}
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(rec.Pid) + "/exe"); err == nil {
		if filepath.Clean(strings.TrimSuffix(exe, " (deleted)")) != filepath.Clean(rec.Exe) {
			return 0
		}
	}
	return rec.Pid
}

// killRecorded kills the process group recorded in pidFile if it still
// runs (waiting at most twice grace) and removes the record.
func killRecorded(pidFile string, grace time.Duration) {
	if pid := findProcess(pidFile); pid > 0 {
		exited, unwatch := watchExit(pid)
		terminate(pid, exited, grace)
		unwatch()
	}
	os.Remove(pidFile)
}

// checkHealth runs a declared health check once.
func checkHealth(ctx context.Context, hc string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	switch {
	case strings.HasPrefix(hc, "http://"), strings.HasPrefix(hc, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, hc, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		// Read to the end, so the connection is kept for the next check.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("%s: status %d", hc, resp.StatusCode)
		}
		return nil
	case strings.HasPrefix(hc, "tcp:"):
		addr := strings.TrimPrefix(strings.TrimPrefix(hc, "tcp://"), "tcp:")
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}
	return errors.New("unsupported health check " + hc)
}
