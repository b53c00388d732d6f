package cli

import (
	"context"
	"errors"
	"net/http"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

// Announcer runs a machine's announcements: over mDNS (a publisher, when
// interfaces are configured) and in the etcd registry (a registrar, when a
// registry is), from the same properties, endpoint and signing key.
type Announcer struct {
	pub *discovery.Publisher
	reg *discovery.Registrar
}

// NewAnnouncer builds the announcements of cfg (mDNS when cfg.Interfaces
// is not empty) and of reg (when enabled); at least one must be set.
func NewAnnouncer(cfg discovery.PublisherConfig, reg discovery.RegistryConfig) (*Announcer, error) {
	a := &Announcer{}
	if cfg.Signer == nil && cfg.SignKey != "" {
		k, err := discovery.LoadKey(cfg.SignKey)
		if err != nil {
			return nil, err
		}
		if !k.CanSign() {
			return nil, errors.New("--sign-key " + cfg.SignKey + ": a public key cannot sign; give the private key or the shared secret")
		}
		cfg.Signer = k
	}
	if len(cfg.Interfaces) > 0 {
		var err error
		if a.pub, err = discovery.NewPublisher(cfg); err != nil {
			return nil, err
		}
	}
	if reg.Enabled() {
		var err error
		a.reg, err = discovery.NewRegistrar(discovery.RegistrarConfig{Registry: reg, Target: cfg.Target,
			PropertiesFile: cfg.PropertiesFile, PropertiesCommand: cfg.PropertiesCommand,
			Endpoint: cfg.Endpoint, Signer: cfg.Signer, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
	}
	if a.pub == nil && a.reg == nil {
		return nil, errNoInterface
	}
	return a, nil
}

// Target is the announced target (the publisher's, else the
// registrar's), nil before Run has read it.
func (a *Announcer) Target() *model.Target {
	if a.pub != nil {
		return a.pub.Target()
	}
	return a.reg.Target()
}

// Routes serves the target document (GET /v1/target: what the
// announcement carries anyway, public, no secrets, so it needs no token)
// and hands every other request to next (nil: not found).
func (a *Announcer) Routes(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(discovery.TargetPath, discovery.TargetHandler(a.Target))
	if next != nil {
		mux.Handle("/", next)
	}
	return mux
}

// Run announces until ctx ends, then withdraws every announcement (mDNS
// goodbye, registration marked leaving and its lease revoked). The first
// announcement to fail ends the others and Run returns its error.
func (a *Announcer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runs []func(context.Context) error
	if a.pub != nil {
		runs = append(runs, a.pub.Run)
	}
	if a.reg != nil {
		runs = append(runs, a.reg.Run)
	}
	errc := make(chan error, len(runs))
	for _, run := range runs {
		go func() { errc <- run(ctx) }()
	}
	var first error
	for range runs {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}
