package adapt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/internal/sdnotify"
)

// Serve runs the loop until ctx ends, with its status server on listen
// (none when empty) and systemd notifications: READY=1 once the models are
// loaded, STOPPING=1 when asked to stop (a running deploy then finishes or,
// after the shutdown timeout, rolls back), and, under WatchdogSec=,
// WATCHDOG=1 at half the interval for as long as the loop answers its
// liveness probe (a hung loop stops the pings and systemd restarts it).
func Serve(ctx context.Context, cfg Config, listen string) error {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	interval, err := sdnotify.WatchdogInterval()
	if err != nil {
		return err
	}
	var loop *Loop
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	ready := cfg.OnReady
	cfg.OnReady = func() {
		if err := sdnotify.Notify("READY=1"); err != nil {
			log.Warn("systemd notify", zap.Error(err))
		}
		if interval > 0 {
			go watchdog(watchCtx, loop, interval/2, log)
		}
		if ready != nil {
			ready()
		}
	}
	loop, err = New(cfg)
	if err != nil {
		return err
	}
	var srv *http.Server
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("--status-listen: %w", err)
		}
		srv = &http.Server{Handler: loop.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status server", zap.Error(err))
			}
		}()
		log.Info("status page", zap.String("url", "http://"+ln.Addr().String()+"/"))
	}
	if cfg.ControlSocket != "" {
		ctl, err := serveControl(loop, cfg.ControlSocket, log)
		if err != nil {
			if srv != nil {
				srv.Close()
			}
			return err
		}
		defer ctl.Close()
	}
	finished := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			log.Info("stopping: finishing the running deploy, if any")
			_ = sdnotify.Notify("STOPPING=1")
		case <-finished:
		}
	}()
	err = loop.Run(ctx)
	close(finished)
	<-stopped
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return err
}

// watchdog sends WATCHDOG=1 every period (on the loop's clock) while the
// loop answers its liveness probe within the period, until ctx ends.
func watchdog(ctx context.Context, loop *Loop, period time.Duration, log *zap.Logger) {
	for {
		probe, cancel := context.WithTimeout(ctx, period)
		err := loop.Alive(probe)
		cancel()
		if ctx.Err() != nil || errors.Is(err, ErrNotRunning) {
			return
		}
		if err != nil {
			log.Error("watchdog: not pinging systemd", zap.Error(err))
		} else if err := sdnotify.Notify("WATCHDOG=1"); err != nil {
			log.Warn("systemd watchdog", zap.Error(err))
		}
		t := loop.clock.NewTimer(period)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// serveControl serves the loop's control endpoints on a unix socket at
// path, readable and writable by the loop's user only. A socket left
// behind by a previous run is replaced; one another loop still serves is
// an error.
func serveControl(loop *Loop, path string, log *zap.Logger) (*http.Server, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another loop serves it (one loop per state directory)", path)
		}
		os.Remove(path)
	}
	// The socket is made private right after it is created; its directory
	// (the state directory, 0700) keeps others out meanwhile.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	srv := &http.Server{Handler: loop.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control socket", zap.Error(err))
		}
	}()
	log.Info("control socket", zap.String("path", path))
	return srv, nil
}
