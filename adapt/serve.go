package adapt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/internal/sdnotify"
)

// Serve runs the loop until ctx ends, with its status server on listen
// (none when empty) and systemd notifications: READY=1 once the models are
// loaded, STOPPING=1 when asked to stop (a running deploy then finishes or,
// after the shutdown timeout, rolls back).
func Serve(ctx context.Context, cfg Config, listen string) error {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ready := cfg.OnReady
	cfg.OnReady = func() {
		if err := sdnotify.Notify("READY=1"); err != nil {
			log.Warn("systemd notify", zap.Error(err))
		}
		if ready != nil {
			ready()
		}
	}
	loop, err := New(cfg)
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
