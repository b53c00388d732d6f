package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/model"
)

// Registration is the document a machine keeps in etcd under
// <prefix>/targets/<hostname>, attached to its lease.
type Registration struct {
	// Target is the target's attribute set (properties, containers, other
	// attributes), normalised as an announcement's (NormalizeTarget).
	Target map[string]any `json:"target"`
	// Hash is ContentHash of the target.
	Hash string `json:"hash"`
	// Endpoint is the agent's (or publisher's) base URL, if any.
	Endpoint string `json:"endpoint,omitempty"`
	// Sig signs hostname, hash and endpoint as an announcement's does.
	Sig string `json:"sig,omitempty"`
	// Leaving marks the last version, written just before the lease is
	// revoked: the machine leaves gracefully. A registration that
	// disappears without it was lost with its lease (a crash).
	Leaving bool `json:"leaving,omitempty"`
}

// maxRegistration bounds a registration document read from etcd.
const maxRegistration = 1 << 20

// checkTargetName refuses hostnames that cannot be one key element.
func checkTargetName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("hostname %q cannot name a registry key (no /, not empty)", name)
	}
	return nil
}

// NewRegistration builds the signed registration of a named, normalised
// target (signer nil: unsigned).
func NewRegistration(t *model.Target, endpoint string, signer Signer) (*Registration, error) {
	if err := checkTargetName(t.Name); err != nil {
		return nil, err
	}
	if endpoint != "" {
		if _, err := targetURL(endpoint); err != nil {
			return nil, err
		}
	}
	h, err := ContentHash(t)
	if err != nil {
		return nil, err
	}
	r := &Registration{Target: targetAttrs(t), Hash: h, Endpoint: endpoint}
	if signer != nil {
		if r.Sig, err = signer.Sign(signedMessage(t.Name, h, endpoint)); err != nil {
			return nil, fmt.Errorf("sign the registration of %s: %w", t.Name, err)
		}
	}
	return r, nil
}

// ParseRegistration reads the registration of name (the key's last
// element) and checks it: the content must match its hash, the endpoint
// must be http(s)://HOST[:PORT], and with v not nil the signature must be
// valid. It returns the normalised target with AgentURLProperty set to the
// endpoint.
func ParseRegistration(name string, data []byte, v Verifier) (*Registration, *model.Target, error) {
	what := "registration of " + name
	if err := checkTargetName(name); err != nil {
		return nil, nil, err
	}
	if len(data) > maxRegistration {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", what, maxRegistration)
	}
	var r Registration
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if r.Target == nil || r.Hash == "" {
		return nil, nil, fmt.Errorf("%s: expected {\"target\": {...}, \"hash\": ...}", what)
	}
	val, err := model.DecodeValue(data, model.FormatJSON, what) // exact numbers
	if err != nil {
		return nil, nil, err
	}
	t, err := model.TargetFromValue(name, val.(map[string]any)["target"], what)
	if err == nil {
		t, err = NormalizeTarget(t)
	}
	if err != nil {
		return nil, nil, err
	}
	ann := &Announcement{Target: t, Hash: r.Hash, Endpoint: r.Endpoint, Sig: r.Sig}
	if err := ann.Verify(t, v); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if r.Endpoint != "" {
		if _, err := targetURL(r.Endpoint); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		if t.Properties == nil {
			t.Properties = map[string]any{}
		}
		t.Properties[AgentURLProperty] = r.Endpoint
	}
	return &r, t, nil
}

// RegistrarConfig configures NewRegistrar. The target comes from Target,
// else PropertiesFile (followed), else PropertiesCommand, as a publisher's.
type RegistrarConfig struct {
	Registry          RegistryConfig
	Target            *model.Target
	PropertiesFile    string
	PropertiesCommand string
	// Endpoint is the agent's base URL registered with the target.
	Endpoint string
	// Signer signs the registration when set.
	Signer Signer
	// RetryInterval is the wait between attempts to (re)register while
	// etcd is unreachable or another lease holds the hostname (default 1 s).
	RetryInterval time.Duration
	// Logger receives progress and warnings (default: none).
	Logger *zap.Logger
}

// Registrar keeps one machine registered in etcd until its Run ends; then
// it marks the registration leaving and revokes the lease (the goodbye).
type Registrar struct {
	cfg RegistrarConfig
	log *zap.Logger

	mu     sync.Mutex
	target *model.Target // normalised, named
	doc    []byte
	kick   chan struct{}
}

// NewRegistrar validates the configuration.
func NewRegistrar(cfg RegistrarConfig) (*Registrar, error) {
	if !cfg.Registry.Enabled() {
		return nil, errors.New("registrar: no registry endpoints")
	}
	if err := cfg.Registry.Check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.Endpoint != "" {
		if _, err := targetURL(cfg.Endpoint); err != nil {
			return nil, fmt.Errorf("registrar: %w", err)
		}
	}
	if cfg.Target == nil && cfg.PropertiesFile == "" && cfg.PropertiesCommand == "" {
		cfg.Target = &model.Target{Properties: map[string]any{}}
	}
	return &Registrar{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1)}, nil
}

// Target returns the registered target (normalised), nil before Run has
// read it.
func (r *Registrar) Target() *model.Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.target == nil {
		return nil
	}
	return r.target.Clone()
}

// SetTarget registers new properties (at once while running). A new
// hostname moves the registration to its key.
func (r *Registrar) SetTarget(t *model.Target) error {
	t, err := ApplyHostname(t)
	if err == nil {
		t, err = NormalizeTarget(t)
	}
	if err != nil {
		return err
	}
	reg, err := NewRegistration(t, r.cfg.Endpoint, r.cfg.Signer)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(reg)
	if err != nil {
		return fmt.Errorf("registration of %s: %w", t.Name, err)
	}
	r.mu.Lock()
	r.target, r.doc = t, doc
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

func (r *Registrar) load(ctx context.Context) (*model.Target, error) {
	switch {
	case r.cfg.Target != nil:
		return r.cfg.Target, nil
	case r.cfg.PropertiesFile != "":
		return LoadTargetFile(ctx, r.cfg.PropertiesFile)
	default:
		return TargetFromCommand(ctx, r.cfg.PropertiesCommand)
	}
}

// Run keeps the machine registered until ctx ends. An unreachable etcd, a
// lost lease or a hostname held by another lease (a previous run of this
// machine whose lease has not expired yet, or another machine, which keeps
// it) is retried every RetryInterval, with a warning; only a bad target is
// an error. On return the registration is marked leaving and the lease
// revoked.
func (r *Registrar) Run(ctx context.Context) error {
	var fw *FileWatcher
	if r.cfg.Target == nil && r.cfg.PropertiesFile != "" {
		var err error
		if fw, err = NewFileWatcher(r.cfg.PropertiesFile); err != nil {
			return err
		}
		defer fw.Close()
	}
	if r.Target() == nil {
		t, err := r.load(ctx)
		if err == nil {
			err = r.SetTarget(t)
		}
		if err != nil {
			return err
		}
	}
	cli, err := r.cfg.Registry.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	if fw != nil {
		go fw.runDebounced(ctx, nil, 50*time.Millisecond, func(ctx context.Context) {
			t, err := LoadTargetFile(ctx, r.cfg.PropertiesFile)
			if err == nil {
				err = r.SetTarget(t)
			}
			if err != nil {
				r.log.Warn("keeping the previous registration", zap.Error(err))
			}
		})
	}
	for ctx.Err() == nil {
		if err := r.session(ctx, cli); err != nil && ctx.Err() == nil {
			r.log.Warn("etcd registration lost; registering again", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.RetryInterval):
			}
		}
	}
	return nil
}

// session grants a lease, registers under it and keeps it alive until ctx
// ends (then it says goodbye and returns nil) or the lease is lost.
func (r *Registrar) session(ctx context.Context, cli *clientv3.Client) error {
	gctx, cancel := context.WithTimeout(ctx, r.cfg.Registry.DialTimeout)
	lease, err := cli.Grant(gctx, r.cfg.Registry.TTLSeconds())
	cancel()
	if err != nil {
		return fmt.Errorf("grant a lease: %w", err)
	}
	kctx, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	alive, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keep lease %x alive: %w", lease.ID, err)
	}
	var key string
	written := []byte(nil)
	defer func() {
		// The goodbye: the leaving marker, then the revocation, on a
		// context of their own (ctx has ended).
		bctx, cancel := context.WithTimeout(context.Background(), r.cfg.Registry.DialTimeout)
		defer cancel()
		if key != "" && written != nil && ctx.Err() != nil {
			var reg Registration
			if json.Unmarshal(written, &reg) == nil {
				reg.Leaving = true
				if doc, err := json.Marshal(reg); err == nil {
					r.putOwned(bctx, cli, key, doc, lease.ID)
				}
			}
		}
		if ctx.Err() == nil {
			return // the lease is lost: nothing to withdraw
		}
		if _, err := cli.Revoke(bctx, lease.ID); err != nil {
			r.log.Warn("revoking the registration's lease", zap.Error(err))
		} else {
			r.log.Info("registration withdrawn", zap.String("key", key))
		}
	}()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-alive:
			if ok {
				continue
			}
			// The client gives up on a lease it heard nothing about for
			// its TTL (an etcd leader election, a member lost): the lease
			// may well live on (a new leader extends every lease). Keep
			// it when it does; only a lease that is gone is re-granted.
			if alive, err = r.resume(ctx, kctx, cli, lease.ID); err != nil {
				return err
			}
			continue
		case <-r.kick:
		case <-retry.C:
		}
		r.mu.Lock()
		newKey, doc := r.cfg.Registry.Key("targets", r.target.Name), r.doc
		r.mu.Unlock()
		if string(doc) == string(written) && newKey == key {
			continue
		}
		if key != "" && newKey != key { // renamed: leave the old key
			dctx, cancel := context.WithTimeout(ctx, r.cfg.Registry.DialTimeout)
			_, _ = cli.Txn(dctx).If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease.ID)).Then(clientv3.OpDelete(key)).Commit()
			cancel()
			key, written = "", nil
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.Registry.DialTimeout)
		ok, holder, err := r.putOwned(pctx, cli, newKey, doc, lease.ID)
		cancel()
		switch {
		case err != nil:
			r.log.Warn("etcd registration failed; retrying", zap.String("key", newKey), zap.Error(err))
			retry.Reset(r.cfg.RetryInterval)
		case !ok:
			r.log.Warn("the hostname is registered under another lease with other content (another machine, which keeps it, or a previous run whose lease has not expired); retrying",
				zap.String("key", newKey), zap.String("holderLease", fmt.Sprintf("%x", holder)))
			retry.Reset(r.cfg.RetryInterval)
		default:
			if written == nil {
				r.log.Info("registered", zap.String("key", newKey), zap.String("lease", fmt.Sprintf("%x", lease.ID)),
					zap.Int64("ttlSeconds", r.cfg.Registry.TTLSeconds()))
			}
			key, written = newKey, doc
		}
	}
}

// resume keeps a lease whose keep-alive channel closed: while the lease
// lives (etcd answers with its remaining TTL) it is kept alive again; a
// lease that expired is an error (the session ends and a new one starts).
func (r *Registrar) resume(ctx, kctx context.Context, cli *clientv3.Client, id clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	for ctx.Err() == nil {
		tctx, cancel := context.WithTimeout(ctx, r.cfg.Registry.DialTimeout)
		ttl, err := cli.TimeToLive(tctx, id)
		cancel()
		switch {
		case err == nil && ttl.TTL > 0:
			r.log.Info("etcd answers again; the registration's lease lives on", zap.String("lease", fmt.Sprintf("%x", id)), zap.Int64("ttlLeft", ttl.TTL))
			alive, err := cli.KeepAlive(kctx, id)
			if err != nil {
				return nil, fmt.Errorf("keep lease %x alive: %w", id, err)
			}
			return alive, nil
		case err == nil:
			return nil, fmt.Errorf("lease %x expired (etcd unreachable for longer than its TTL)", id)
		}
		r.log.Warn("etcd unreachable; checking the registration's lease again", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.RetryInterval):
		}
	}
	return nil, ctx.Err()
}

// putOwned writes doc to key under lease when the key is free, already
// the lease's, or holds exactly doc under another lease (a previous run of
// this machine); otherwise it reports the holder's lease.
func (r *Registrar) putOwned(ctx context.Context, cli *clientv3.Client, key string, doc []byte, lease clientv3.LeaseID) (bool, int64, error) {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease)).
		Then(clientv3.OpPut(key, string(doc), clientv3.WithLease(lease))).
		Else(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(key, string(doc), clientv3.WithLease(lease))},
			[]clientv3.Op{clientv3.OpGet(key)})).
		Commit()
	if err != nil {
		return false, 0, fmt.Errorf("register %s: %w", key, err)
	}
	if resp.Succeeded {
		return true, 0, nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return true, 0, nil
	}
	kvs := inner.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 { // deleted meanwhile: the next attempt takes it
		return false, 0, nil
	}
	holder := kvs[0].Lease
	if string(kvs[0].Value) != string(doc) {
		return false, holder, nil
	}
	// The very document this machine registers, under another lease: a
	// previous run of this machine (restarted before its lease ran out).
	// Taking it over changes nothing for the watchers, where waiting for
	// the old lease would show a crash and a return.
	take, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", holder), clientv3.Compare(clientv3.Value(key), "=", string(doc))).
		Then(clientv3.OpPut(key, string(doc), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return false, 0, fmt.Errorf("register %s: %w", key, err)
	}
	if take.Succeeded {
		r.log.Info("took over the registration of a previous run (the same document)", zap.String("key", key),
			zap.String("previousLease", fmt.Sprintf("%x", holder)))
	}
	return take.Succeeded, holder, nil
}
