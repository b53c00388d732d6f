// Package ha runs several coordinators (dydisnix-self-adapt --registry)
// with one leader among them, elected with etcd's election API: only the
// leader deploys, it keeps the coordinator's record (rollout.SharedState)
// in etcd so that a new leader continues where it stopped, and every agent
// request it sends carries its election revision, so agents refuse the
// late steps of a deposed leader (fencing). See docs/registry.md.
package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/adapt"
)

// DefaultTTL is the election session's lease TTL: a leader that cannot
// renew it for this long stops leading, and a standby takes over about
// this long after the leader died.
const DefaultTTL = 3 * time.Second

// ErrNotLeader is the error of a deploy or a save attempted by a
// coordinator that does not lead (any more).
var ErrNotLeader = errors.New("this coordinator does not lead")

// Config configures an Elector.
type Config struct {
	// Client reaches etcd.
	Client *clientv3.Client
	// Prefix is the coordinators' key prefix, e.g.
	// "/dydisnix/default/coordinator": the election lives under
	// Prefix/leader/, the shared record under Prefix/state/.
	Prefix string
	// Name names this coordinator (rollout.LockOwner: host and state
	// directory).
	Name string
	// TTL is the session's lease TTL (default DefaultTTL; whole seconds).
	TTL time.Duration
	// Logger receives the elections (default: none).
	Logger *zap.Logger
}

// Elector campaigns for the lead until its Run ends, and tells who leads.
type Elector struct {
	cfg Config

	mu      sync.Mutex
	term    *term        // the running term (nil: not leading)
	fence   int64        // the revision of the last term (kept after it ends)
	seen    adapt.Leader // the leader as observed
	changed chan struct{}
}

// term is one period of leadership.
type term struct {
	key   string // the election key
	rev   int64  // its creation revision: the fencing revision
	since time.Time
	ctx   context.Context // ends with the term
}

// proclaimed is the value of the leader's election key.
type proclaimed struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since,omitzero"`
}

// New returns an Elector; Run campaigns.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil || cfg.Prefix == "" || cfg.Name == "" {
		return nil, errors.New("ha: Config needs a Client, a Prefix and a Name")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	cfg.TTL = (cfg.TTL + time.Second - 1) / time.Second * time.Second
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Elector{cfg: cfg, changed: make(chan struct{})}, nil
}

func (e *Elector) electionPrefix() string { return e.cfg.Prefix + "/leader" }

// Run campaigns until ctx ends: once elected the coordinator leads until
// its session lapses (no renewal got through for TTL, counted from when
// the last successful renewal was sent, so it stops before etcd lets
// another coordinator win) or ctx ends (it resigns: a standby takes over
// at once); then it campaigns again.
func (e *Elector) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := e.campaign(ctx)
		if ctx.Err() != nil {
			break
		}
		e.cfg.Logger.Warn("election: campaigning again", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(e.cfg.TTL / 6):
		}
	}
	return nil
}

// campaign runs one session: it waits to be elected, then leads until the
// session lapses or ctx ends.
func (e *Elector) campaign(ctx context.Context) error {
	cli := e.cfg.Client
	ttl := int64(e.cfg.TTL / time.Second)
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		return fmt.Errorf("grant the session's lease: %w", err)
	}
	s, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.TTL)
		defer cancel()
		_, _ = cli.Revoke(rctx, lease.ID) // a standby takes over at once
		s.Orphan()
	}()
	el := concurrency.NewElection(s, e.electionPrefix())
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	go e.observe(obsCtx, el)
	val, _ := json.Marshal(proclaimed{Name: e.cfg.Name})
	if err := el.Campaign(ctx, string(val)); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	// Campaign waits for the older keys only: check that ours survived
	// the wait (a lapsed session's key is gone).
	got, err := cli.Get(ctx, el.Key())
	if err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	if len(got.Kvs) == 0 || got.Kvs[0].CreateRevision != el.Rev() {
		return errors.New("campaign: the session lapsed while waiting")
	}
	// The session renewed the lease while it waited, but when is not
	// known here: renew it now and count the term's deadline from then.
	sent := time.Now()
	if r, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil || r.TTL <= 0 {
		return fmt.Errorf("campaign: renew the session after the election: %w", err)
	}
	t := &term{key: el.Key(), rev: el.Rev(), since: time.Now()}
	val, _ = json.Marshal(proclaimed{Name: e.cfg.Name, Since: t.since})
	if err := el.Proclaim(ctx, string(val)); err != nil {
		return fmt.Errorf("proclaim: %w", err)
	}
	tctx, endTerm := context.WithCancelCause(ctx)
	t.ctx = tctx
	e.setTerm(t)
	e.cfg.Logger.Info("election: this coordinator leads", zap.Int64("revision", t.rev))
	err = e.hold(tctx, s, lease.ID, sent)
	endTerm(fmt.Errorf("%w: %w", ErrNotLeader, err))
	e.setTerm(nil)
	e.cfg.Logger.Warn("election: this coordinator no longer leads", zap.Error(err))
	return err
}

// hold renews the session's lease every TTL/4 until ctx ends or the
// session lapses. The term ends when TTL has passed since the last renewal
// that got through was sent (renewed: the first): etcd cannot have expired
// the lease before.
func (e *Elector) hold(ctx context.Context, s *concurrency.Session, id clientv3.LeaseID, renewed time.Time) error {
	ttl := e.cfg.TTL
	deadline := renewed.Add(ttl)
	for {
		wait := ttl / 4
		if left := time.Until(deadline); left < wait {
			wait = left
		}
		if wait <= 0 {
			return fmt.Errorf("the session lapsed: no renewal got through for %v", ttl)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.Done():
			return errors.New("the session ended")
		case <-time.After(wait):
		}
		sent := time.Now()
		left := time.Until(deadline)
		if left <= 0 {
			continue
		}
		kctx, cancel := context.WithTimeout(ctx, left)
		r, err := e.cfg.Client.KeepAliveOnce(kctx, id)
		cancel()
		switch {
		case err == nil && r.TTL > 0:
			deadline = sent.Add(ttl)
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && r.TTL <= 0):
			return fmt.Errorf("the session's lease expired: %w", err)
		case err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded):
			e.cfg.Logger.Warn("election: renewal failed", zap.Error(err))
		}
	}
}

// observe follows who leads, for the status.
func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	for resp := range el.Observe(ctx) {
		if len(resp.Kvs) == 0 {
			continue
		}
		kv := resp.Kvs[0]
		var p proclaimed
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			p.Name = string(kv.Value)
		}
		e.mu.Lock()
		e.seen = adapt.Leader{Name: p.Name, Since: p.Since, Revision: kv.CreateRevision}
		e.notifyLocked()
		e.mu.Unlock()
	}
}

func (e *Elector) setTerm(t *term) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.term = t
	if t != nil {
		e.fence = t.rev
		e.seen = adapt.Leader{Name: e.cfg.Name, Since: t.since, Revision: t.rev}
	}
	e.notifyLocked()
}

func (e *Elector) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// Standing returns who leads as this coordinator sees it.
func (e *Elector) Standing() adapt.Leader {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.standingLocked()
}

func (e *Elector) standingLocked() adapt.Leader {
	ld := e.seen
	ld.Leading = e.term != nil
	if e.term != nil {
		ld.Name, ld.Since, ld.Revision = e.cfg.Name, e.term.since, e.term.rev
	} else if ld.Name == e.cfg.Name {
		ld = adapt.Leader{} // our own lapsed term: whoever follows is not known yet
	}
	return ld
}

// Watch implements adapt.Leadership: the standing at once and after every
// change, the newest only when the reader lags.
func (e *Elector) Watch(ctx context.Context) <-chan adapt.Leader {
	out := make(chan adapt.Leader)
	go func() {
		var last *adapt.Leader
		for {
			e.mu.Lock()
			ld, changed := e.standingLocked(), e.changed
			e.mu.Unlock()
			if last == nil || *last != ld {
				select {
				case out <- ld:
					last = &ld
				case <-ctx.Done():
					return
				case <-changed:
					continue
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	return out
}

// Fence returns the revision of this coordinator's newest term (0 before
// it ever led): deployer.AgentBackend.Fence. It stays set after the term
// ended, so the late requests of a deposed leader carry its old revision
// and are refused by the agents the new leader reached.
func (e *Elector) Fence() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fence
}

// Term returns a context that ends when ctx does or when this
// coordinator's term ends (its cause wraps ErrNotLeader), with its
// release; ErrNotLeader when it does not lead.
func (e *Elector) Term(ctx context.Context) (context.Context, func(), error) {
	e.mu.Lock()
	t := e.term
	e.mu.Unlock()
	if t == nil {
		return nil, nil, ErrNotLeader
	}
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	return c, func() { stop(); cancel(nil) }, nil
}

// guard returns the election key and revision of the running term, for a
// write only the leader may make.
func (e *Elector) guard() (string, int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term == nil || e.term.ctx.Err() != nil {
		return "", 0, ErrNotLeader
	}
	return e.term.key, e.term.rev, nil
}
