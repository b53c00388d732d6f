package adapt

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dydisnix/dydisnix/internal/sdnotify"
)

// notifySocket listens as systemd does for a Type=notify service with
// WatchdogSec= and returns the socket.
func notifySocket(t *testing.T, watchdog time.Duration) *net.UnixConn {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(sdnotify.SocketEnv, name)
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	return conn
}

// TestServeWatchdog: under WatchdogSec= a running loop pings WATCHDOG=1
// repeatedly after READY=1, and stops when it stops.
func TestServeWatchdog(t *testing.T) {
	conn := notifySocket(t, 40*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{}, &recordingDeployer{}}}, "")
	}()
	var got []string
	buf := make([]byte, 256)
	for pings := 0; pings < 3; {
		conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound for a failure, not a margin
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(buf[:n]))
		if string(buf[:n]) == "WATCHDOG=1" {
			if len(got) < 2 || got[0] != "READY=1" {
				t.Fatalf("a ping before READY=1: %q", got)
			}
			pings++
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestWatchdogSilentWhenLoopHangs: a loop that does not answer its
// liveness probe gets no ping (systemd will restart it), and the reason is
// logged.
func TestWatchdogSilentWhenLoopHangs(t *testing.T) {
	conn := notifySocket(t, time.Second)
	l, err := New(Config{Source: make(ChanSource), Pass: fakePass{&fakePlanner{}, &recordingDeployer{}}})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.ErrorLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); watchdog(ctx, l, 10*time.Millisecond, zap.New(core)) }() // l never runs
	for logs.FilterMessage("watchdog: not pinging systemd").Len() == 0 {
		select {
		case <-time.After(time.Millisecond):
		case <-done:
			t.Fatal("watchdog gave up on a loop that was never started")
		}
	}
	cancel()
	<-done
	conn.SetReadDeadline(time.Now())
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("pinged for a hung loop: %q", strings.TrimSpace(string(buf[:n])))
	}
}
