package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/model"
)

// Choice says where the coordinators (dydisnix-env, dydisnix-self-adapt)
// take the infrastructure from: the first field set wins, in the order
// File, Command, then discovery: the Registry, Interfaces, or both
// combined (CombinedSource, the registry first).
type Choice struct {
	// File is a static infrastructure model (-i), watched by the loop.
	File string
	// Command is an infrastructure generator (--geninfra or
	// $DYDISNIX_GENINFRA), run every Interval by the loop.
	Command  string
	Interval time.Duration
	// Interfaces are browsed for mDNS announcements, with Browser's other
	// settings (its Interfaces field is ignored).
	Interfaces []string
	Browser    BrowserConfig
	// Registry is the etcd registry watched (EtcdSource); its verify key,
	// HTTP client (probes) and debounce come from Browser.
	Registry RegistryConfig
}

// errNoInfrastructure is what a Choice with nothing set says.
var errNoInfrastructure = errors.New("no infrastructure: give -i FILE, --geninfra CMD (or $" + GeninfraEnv + "), --mdns-interface IF to browse mDNS, or --registry etcd://HOST:2379")

// Source returns the continuous source of the choice (the loop's).
func (c Choice) Source(log *zap.Logger) (Source, error) {
	switch {
	case c.File != "":
		return NewFileSource(c.File), nil
	case c.Command != "":
		s, err := NewCommandSource(c.Command, c.Interval)
		if err != nil {
			return nil, err
		}
		s.Logger = log
		return s, nil
	case c.Registry.Enabled() && len(c.Interfaces) > 0:
		reg, err := c.registrySource(log)
		if err != nil {
			return nil, err
		}
		cfg := c.Browser
		cfg.Interfaces, cfg.Logger = c.Interfaces, log
		mdns, err := NewMDNSSource(cfg)
		if err != nil {
			return nil, err
		}
		return Combine([]Source{reg, mdns}, []string{"registry", "mdns"})
	case c.Registry.Enabled():
		return c.registrySource(log)
	case len(c.Interfaces) > 0:
		cfg := c.Browser
		cfg.Interfaces, cfg.Logger = c.Interfaces, log
		return NewMDNSSource(cfg)
	}
	return nil, errNoInfrastructure
}

// registrySource is the etcd source of the choice.
func (c Choice) registrySource(log *zap.Logger) (*EtcdSource, error) {
	b := c.Browser
	cfg := EtcdSourceConfig{Registry: c.Registry, Verifier: b.Verifier, SignKey: b.SignKey, HTTPClient: b.HTTPClient,
		ProbeTimeout: b.ProbeTimeout, Debounce: b.Debounce, MaxDelay: b.MaxDelay, Logger: log}
	if b.ProbeInterval < 0 {
		cfg.ProbeRetry = -1
	}
	if cfg.Registry.Logger == nil {
		cfg.Registry.Logger = log
	}
	return NewEtcdSource(cfg)
}

// Once returns the infrastructure as the choice sees it now (the one-shot
// dydisnix-env's): the file read, the generator run once, or mDNS browsed
// for browse and the last snapshot taken.
func (c Choice) Once(ctx context.Context, browse time.Duration, log *zap.Logger) (model.Infrastructure, error) {
	switch {
	case c.File != "":
		return model.LoadInfrastructureContext(ctx, c.File, model.NixOptions{})
	case c.Command != "":
		s, err := NewCommandSource(c.Command, c.Interval)
		if err != nil {
			return nil, err
		}
		return s.Generate(ctx)
	case c.Registry.Enabled() && len(c.Interfaces) == 0:
		// The registry's first snapshot is complete: no need to wait.
		src, err := c.registrySource(log)
		if err != nil {
			return nil, err
		}
		return First(ctx, src, browse, "the registry at "+strings.Join(c.Registry.Endpoints, ","))
	case len(c.Interfaces) == 0:
		return nil, errNoInfrastructure
	}
	src, err := c.Source(log)
	if err != nil {
		return nil, err
	}
	if log != nil { // the wait is not silent: say what is browsed and for how long
		log.Info("browsing mDNS for the infrastructure", zap.Strings("interfaces", c.Interfaces), zap.String("for", browse.String()))
	}
	return Collect(ctx, src, browse, fmt.Sprintf("mDNS on %s", strings.Join(c.Interfaces, ",")))
}

// First runs src until its first snapshot (at most d) and returns its
// infrastructure; what names the source in the error.
func First(ctx context.Context, src Source, d time.Duration, what string) (model.Infrastructure, error) {
	fctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	snaps := make(chan Snapshot, 1)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(fctx, snaps) }()
	select {
	case s := <-snaps:
		cancel()
		<-errc
		return s.Infrastructure, nil
	case err := <-errc:
		if err == nil {
			err = fmt.Errorf("%s: no snapshot within %s", what, d)
		}
		return nil, err
	}
}

// Collect runs src for d and returns the infrastructure of its last
// snapshot; what names the source in the error when it reported nothing.
func Collect(ctx context.Context, src Source, d time.Duration, what string) (model.Infrastructure, error) {
	bctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	snaps := make(chan Snapshot, 4)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(bctx, snaps) }()
	var last model.Infrastructure
	for {
		select {
		case s := <-snaps:
			last = s.Infrastructure
		case err := <-errc:
			for drained := false; !drained; {
				select {
				case s := <-snaps:
					last = s.Infrastructure
				default:
					drained = true
				}
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				return nil, err
			}
			if last == nil {
				return nil, fmt.Errorf("%s: no machine found within %s", what, d)
			}
			return last, nil
		}
	}
}

// DefaultInterfaces returns the interfaces mDNS is browsed on when none is
// named (dydisnix-geninfra-avahi without --interface, as the original's
// Avahi browsed): every interface that is up, multicast-capable and not a
// loopback, in the system's order.
func DefaultInterfaces() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	return browsable(ifs), nil
}

// browsable returns the names of the interfaces of ifs that are up,
// multicast-capable and not loopbacks.
func browsable(ifs []net.Interface) []string {
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 && i.Flags&net.FlagLoopback == 0 {
			out = append(out, i.Name)
		}
	}
	return out
}
