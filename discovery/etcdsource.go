package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/model"
)

// Reasons of the etcd source's events. A graceful leave is ReasonGoodbye
// (Event.Graceful), as an mDNS goodbye.
const (
	// ReasonRegistered: a registration appeared (and its endpoint answered).
	ReasonRegistered = "registered"
	// ReasonRegistrationChanged: a registration's content changed.
	ReasonRegistrationChanged = "registration-changed"
	// ReasonLeaseExpired: a registration disappeared without its leaving
	// marker: its lease expired (the machine crashed or was cut off).
	ReasonLeaseExpired = "lease-expired"
)

// EtcdSourceConfig configures NewEtcdSource.
type EtcdSourceConfig struct {
	Registry RegistryConfig
	// Verifier, when set, makes the source ignore unsigned or forged
	// registrations (logged once per version).
	Verifier Verifier
	// SignKey is a key file (LoadKey) used as Verifier when Verifier is nil.
	SignKey string
	// HTTPClient probes registered endpoints (the fleet's mTLS client).
	HTTPClient *http.Client
	// ProbeTimeout bounds one probe (default 800 ms).
	ProbeTimeout time.Duration
	// ProbeRetry is the wait before probing an endpoint that did not
	// answer again (default 1 s; negative: endpoints are not probed).
	ProbeRetry time.Duration
	// Debounce is the quiet period that ends a burst (default 100 ms).
	Debounce time.Duration
	// MaxDelay caps how long a burst is held back (default 1 s).
	MaxDelay time.Duration
	// InitialWait bounds how long the first snapshot waits for the first
	// listing and its probes (default 3 s; an empty or partial snapshot
	// follows, then the complete one when etcd answers).
	InitialWait time.Duration
	// Logger receives warnings (default: none).
	Logger *zap.Logger
}

// EtcdSource watches the fleet's registrations in etcd and emits snapshots
// with the same events as the mDNS browser: a registration is added once
// its endpoint answers a probe, a changed one is re-verified, a leaving
// marker is a graceful removal (ReasonGoodbye) and a registration lost with
// its lease a crash (ReasonLeaseExpired).
type EtcdSource struct {
	cfg EtcdSourceConfig
	log *zap.Logger
}

// NewEtcdSource validates the configuration.
func NewEtcdSource(cfg EtcdSourceConfig) (*EtcdSource, error) {
	if !cfg.Registry.Enabled() {
		return nil, errors.New("etcd source: no registry endpoints")
	}
	if err := cfg.Registry.Check(); err != nil {
		return nil, err
	}
	if cfg.Verifier == nil && cfg.SignKey != "" {
		k, err := LoadKey(cfg.SignKey)
		if err != nil {
			return nil, err
		}
		cfg.Verifier = k
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.ProbeRetry == 0 {
		cfg.ProbeRetry = time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.ProbeTimeout}
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = time.Second
	}
	if cfg.InitialWait <= 0 {
		cfg.InitialWait = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &EtcdSource{cfg: cfg, log: cfg.Logger}, nil
}

// registered is the source's view of one registration.
type registered struct {
	target   *model.Target // verified content of the current version
	endpoint string
	leaving  bool
	// probed is the endpoint that answered (accepted is shown only when
	// it is the current one, or there is no endpoint).
	probed   string
	probing  bool
	accepted *model.Target // the version in the model (nil: none)
	bad      string        // the rejected version's value, logged once
}

// etcdProbe is a probe's result, or (retry) the time to probe again.
type etcdProbe struct {
	name, endpoint string
	ok, retry      bool
}

// Run implements Source.
func (s *EtcdSource) Run(ctx context.Context, out chan<- Snapshot) error {
	cli, err := s.cfg.Registry.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefix := s.cfg.Registry.TargetsPrefix()
	regs := map[string]*registered{}
	probes := make(chan etcdProbe, 16)
	deb := Debouncer{Quiet: s.cfg.Debounce, MaxDelay: s.cfg.MaxDelay}
	started := false // the first snapshot was emitted
	listed := false  // the prefix was listed once
	initial := time.NewTimer(s.cfg.InitialWait)
	defer initial.Stop()

	// gone marks the names whose registration left gracefully (a leaving
	// marker was seen), until their removal was reported.
	gone := map[string]bool{}
	// apply updates one registration from a KV (nil: deleted) and starts
	// its probe when needed.
	apply := func(name string, value []byte) {
		r := regs[name]
		if value == nil {
			delete(regs, name)
			return
		}
		reg, t, err := ParseRegistration(name, value, s.cfg.Verifier)
		if err != nil {
			if r == nil || r.bad != string(value) {
				s.log.Warn("ignoring a registration", zap.String("target", name), zap.Error(err))
			}
			if r != nil {
				r.bad = string(value)
			}
			return
		}
		if r == nil {
			r = &registered{}
			regs[name] = r
		}
		r.bad = ""
		r.target, r.endpoint, r.leaving = t, reg.Endpoint, reg.Leaving
		if r.leaving {
			gone[name] = true
		} else {
			delete(gone, name)
		}
		s.maybeProbe(ctx, name, r, probes)
	}
	// current returns the model of the accepted registrations.
	current := func() model.Infrastructure {
		infra := model.Infrastructure{}
		for n, r := range regs {
			if r.leaving {
				continue
			}
			if r.endpoint == "" || s.cfg.ProbeRetry < 0 || r.probed == r.endpoint {
				r.accepted = r.target
			}
			if r.accepted != nil {
				infra[n] = r.accepted.Clone()
			}
		}
		return infra
	}
	// diff returns the events from old to cur with the source's reasons.
	diff := func(old, cur model.Infrastructure, now time.Time) []Event {
		evs := Diff(old, cur, "", now)
		for i, e := range evs {
			switch e.Kind {
			case EventAdded:
				evs[i].Reason = ReasonRegistered
			case EventChanged:
				evs[i].Reason = ReasonRegistrationChanged
			case EventRemoved:
				evs[i].Reason = ReasonLeaseExpired
				if gone[e.Target] {
					evs[i].Reason = ReasonGoodbye
				}
			}
		}
		for n := range gone {
			if _, ok := regs[n]; !ok {
				delete(gone, n)
			}
		}
		return evs
	}
	var last model.Infrastructure // the model after the previous change
	emit := func(evs []Event, now time.Time) bool {
		select {
		case out <- Snapshot{Infrastructure: last.Clone(), Events: evs, At: now}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// start emits the first snapshot: every accepted registration added.
	start := func() bool {
		started = true
		now := time.Now()
		cur := current()
		evs := diff(nil, cur, now)
		last = cur
		return emit(evs, now)
	}
	pending := func() bool { // a first-listing probe has not answered yet
		for _, r := range regs {
			if r.probing && r.accepted == nil {
				return true
			}
		}
		return false
	}

	rev, err := s.list(ctx, cli, prefix, apply)
	for err != nil {
		s.log.Warn("listing the registry failed; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-initial.C:
			if !start() {
				return nil
			}
		case <-time.After(time.Second):
		}
		rev, err = s.list(ctx, cli, prefix, apply)
	}
	listed = true
	watch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	var debTimer <-chan time.Time
	for {
		now := time.Now()
		switch {
		case !started && listed && !pending():
			if !start() {
				return nil
			}
		case started:
			cur := current()
			deb.Add(diff(last, cur, now), now)
			last = cur
			if evs, ok := deb.Take(now); ok {
				if !emit(evs, now) {
					return nil
				}
			}
		}
		debTimer = nil
		if at, ok := deb.Deadline(); ok {
			debTimer = time.After(time.Until(at))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-initial.C:
			if !started && !start() {
				return nil
			}
		case <-debTimer:
		case p := <-probes:
			r := regs[p.name]
			switch {
			case r == nil:
			case p.retry:
				s.maybeProbe(ctx, p.name, r, probes)
			case r.endpoint == p.endpoint:
				r.probing = false
				if p.ok {
					r.probed = p.endpoint
					break
				}
				s.log.Info("a registered endpoint does not answer yet", zap.String("target", p.name), zap.String("endpoint", p.endpoint))
				go func(name string) {
					select {
					case <-time.After(s.cfg.ProbeRetry):
						select {
						case probes <- etcdProbe{name: name, retry: true}:
						case <-ctx.Done():
						}
					case <-ctx.Done():
					}
				}(p.name)
			}
		case wr, ok := <-watch:
			if !ok || wr.Err() != nil {
				if ctx.Err() != nil {
					return nil
				}
				if ok {
					s.log.Warn("registry watch interrupted; listing again", zap.Error(wr.Err()))
				}
				if rev, ok = s.relist(ctx, cli, prefix, regs, apply); !ok {
					return nil
				}
				watch = cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
				continue
			}
			for _, ev := range wr.Events {
				name := strings.TrimPrefix(string(ev.Kv.Key), prefix)
				if strings.Contains(name, "/") {
					continue
				}
				if ev.Type == mvccpb.DELETE {
					apply(name, nil)
				} else {
					apply(name, ev.Kv.Value)
				}
			}
		}
	}
}

// relist lists the registrations again after a broken watch (retrying
// until it succeeds or ctx ends): what vanished meanwhile is deleted.
func (s *EtcdSource) relist(ctx context.Context, cli *clientv3.Client, prefix string, regs map[string]*registered, apply func(string, []byte)) (int64, bool) {
	for ctx.Err() == nil {
		fresh := map[string][]byte{}
		rev, err := s.list(ctx, cli, prefix, func(n string, v []byte) { fresh[n] = v })
		if err != nil {
			s.log.Warn("listing the registry failed; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for n := range regs {
			if _, ok := fresh[n]; !ok {
				apply(n, nil)
			}
		}
		for n, v := range fresh {
			apply(n, v)
		}
		return rev, true
	}
	return 0, false
}

// maybeProbe starts the probe of r's endpoint unless it answered already
// or a probe runs.
func (s *EtcdSource) maybeProbe(ctx context.Context, name string, r *registered, out chan<- etcdProbe) {
	if r.endpoint == "" || s.cfg.ProbeRetry < 0 || r.probed == r.endpoint || r.probing || r.leaving {
		return
	}
	r.probing = true
	go func(endpoint string) {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
		defer cancel()
		ok := false
		u, err := targetURL(endpoint)
		var req *http.Request
		if err == nil {
			req, err = http.NewRequestWithContext(pctx, http.MethodHead, u, nil)
		}
		if err == nil {
			if resp, err := s.cfg.HTTPClient.Do(req); err == nil {
				resp.Body.Close()
				ok = true
			}
		}
		select {
		case out <- etcdProbe{name: name, endpoint: endpoint, ok: ok}:
		case <-ctx.Done():
		}
	}(r.endpoint)
}

// list reads every registration under prefix (names in order) and returns
// the revision to watch from.
func (s *EtcdSource) list(ctx context.Context, cli *clientv3.Client, prefix string, apply func(string, []byte)) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, s.cfg.Registry.DialTimeout)
	defer cancel()
	resp, err := cli.Get(lctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	kvs := resp.Kvs
	sort.Slice(kvs, func(i, j int) bool { return string(kvs[i].Key) < string(kvs[j].Key) })
	for _, kv := range kvs {
		name := strings.TrimPrefix(string(kv.Key), prefix)
		if !strings.Contains(name, "/") {
			apply(name, kv.Value)
		}
	}
	return resp.Header.Revision, nil
}
