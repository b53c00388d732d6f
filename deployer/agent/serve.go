package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/netutil"
)

// Listen listens on addr (host:port) for Serve. With cfg (see
// fleettls.ServerConfig: the agent's certificate, and only clients with a
// coordinator certificate of the fleet CA) the listener serves HTTPS; nil
// serves plain HTTP (--insecure-http).
func Listen(addr string, cfg *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// ServeConfig says how Serve runs an agent.
type ServeConfig struct {
	// Listener is where the API is served (see Listen).
	Listener net.Listener
	// Handler serves the requests; nil means the agent's Handler (the
	// command wraps it to serve the public target document when it
	// announces the machine).
	Handler http.Handler
	// Signals delivers stop requests (from signal.Notify with SIGTERM and
	// SIGINT). The first one starts the drain; one during the drain ends
	// it at once: the processes are stopped and Serve returns.
	Signals <-chan os.Signal
	// DrainTimeout bounds the drain (default 2 minutes).
	DrainTimeout time.Duration
	// Announce, when set, runs the machine's announcement (mDNS) until its
	// context is cancelled; Serve cancels it when the drain starts and
	// waits for it to return (goodbye sent) before draining. An error
	// other than the cancellation stops the agent.
	Announce func(ctx context.Context) error
	// Notify receives the service manager states "READY=1" and
	// "STOPPING=1" (sd_notify); nil: none.
	Notify func(state string)
	// MaxConns bounds the connections served at once (default 128); more
	// wait in the listen queue until one closes. Idle connections are
	// closed after IdleTimeout (default 60s), connections that send no
	// complete request header after ReadHeaderTimeout (default 10s), so a
	// flood of idle connections delays others by at most those times and
	// never exhausts the agent's file descriptors.
	MaxConns          int
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
	// ReadTimeout and WriteTimeout bound reading a whole request and
	// writing its response (default 15 minutes each: an upload of the
	// largest artifact, an activation waiting for its health check).
	ReadTimeout, WriteTimeout time.Duration
}

func (c *ServeConfig) defaults() {
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 2 * time.Minute
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 128
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Minute
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 15 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 15 * time.Minute
	}
}

// Serve serves a's API until ctx ends or a signal arrives, then drains the
// agent (withdraw the announcement, refuse new activations, wait until the
// coordinator has moved the services away, at most DrainTimeout; a second
// signal cuts this short), stops every process the agent started, shuts
// the server down and returns nil.
//
// When serving or the announcement fails, Serve returns the error after
// handing the processes over: they keep running, recorded in the state
// directory, and the next agent adopts them.
func Serve(ctx context.Context, a *Agent, cfg ServeConfig) error {
	cfg.defaults()
	notify := cfg.Notify
	if notify == nil {
		notify = func(string) {}
	}
	handler := cfg.Handler
	if handler == nil {
		handler = a.Handler()
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(netutil.LimitListener(cfg.Listener, cfg.MaxConns)) }()
	annCtx, withdraw := context.WithCancel(context.Background())
	defer withdraw()
	var annDone chan error // nil (never ready) without an announcement
	if cfg.Announce != nil {
		annDone = make(chan error, 1)
		go func() { annDone <- cfg.Announce(annCtx) }()
	}
	a.log.Info("agent listening", zap.String("address", cfg.Listener.Addr().String()), zap.String("stateDir", a.cfg.StateDir))
	notify("READY=1")

	fail := func(err error) error {
		withdraw()
		srv.Close()
		if annDone != nil {
			<-annDone
		}
		a.Close(false)
		return err
	}
	for running := true; running; {
		select {
		case err := <-srvDone:
			return fail(fmt.Errorf("serve: %w", err))
		case err := <-annDone:
			annDone = nil // ended: nothing to wait for any more
			if err != nil && !errors.Is(err, context.Canceled) {
				return fail(fmt.Errorf("announcement: %w", err))
			}
		case <-ctx.Done():
			running = false
		case sig := <-cfg.Signals:
			a.log.Info("stop requested: draining", zap.Stringer("signal", sig))
			running = false
		}
	}
	notify("STOPPING=1")
	// Drain: goodbye first, then wait for the coordinator, then stop.
	withdraw()
	if annDone != nil {
		<-annDone
		a.log.Info("announcement withdrawn (goodbye sent)")
	}
	drainCtx, cutShort := context.WithCancel(context.Background())
	defer cutShort()
	go func() {
		select {
		case sig := <-cfg.Signals:
			a.log.Info("second stop request: stopping the services now", zap.Stringer("signal", sig))
			cutShort()
		case <-drainCtx.Done():
		}
	}()
	moved := a.Drain(drainCtx, cfg.DrainTimeout)
	a.log.Info("drained: every process stopped", zap.Bool("servicesMovedAway", moved))
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}
