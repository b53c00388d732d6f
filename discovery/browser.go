package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/internal/clock"
	"github.com/dydisnix/dydisnix/model"
)

// Source produces infrastructure snapshots: one right after start (once
// known) and one per debounced burst of changes. Run blocks until ctx ends
// (returning nil) or the source fails.
type Source interface {
	Run(ctx context.Context, out chan<- Snapshot) error
}

// Defaults of BrowserConfig; each is chosen from RFC 6762 numbers and the
// delays users expect from a coordinator.
const (
	// DefaultBrowseInterval: one PTR query every 2 s. RFC 6762 allows a
	// continuous querier to ask at most once per second; 2 s keeps the
	// traffic at one small packet per round while bounding crash detection.
	DefaultBrowseInterval = 2 * time.Second
	// DefaultDebounce: a burst of changes (several machines booting) yields
	// one snapshot once 250 ms pass without a further change...
	DefaultDebounce = 250 * time.Millisecond
	// DefaultMaxDelay: ...but never later than 2 s after the first change.
	DefaultMaxDelay = 2 * time.Second
	// DefaultInitialWait: the first snapshot is emitted after three query
	// rounds of the start-up phase (0, 0.25 s, 1 s), when every responder
	// has had the RFC's 20–120 ms answer delay plus margin.
	DefaultInitialWait = 1500 * time.Millisecond
	// DefaultProbeInterval: an announced endpoint is probed every second
	// (a TCP connect and an HTTP HEAD; any HTTP answer means alive).
	DefaultProbeInterval = time.Second
	// DefaultProbeTimeout bounds one probe.
	DefaultProbeTimeout = 800 * time.Millisecond
	// ProbeBackoffLimit: a probe that times out doubles its endpoint's
	// next timeout, up to this many times the probe timeout; an answer or
	// a refused connection brings it back (RFC 6298's backed-off
	// retransmission timer). The first timeout in a row only backs off;
	// the later ones count as failed probes. An endpoint on a host starved
	// for a few seconds then answers a longer probe rather than being
	// removed after two short ones (Lifeguard, in Consul's failure
	// detector, scales its timeouts for the same reason), while a refused
	// connection (a crashed agent) counts at once. An HTTP client for
	// probes should allow this many times the probe timeout.
	ProbeBackoffLimit = 4
)

// BrowserConfig configures NewMDNSSource.
type BrowserConfig struct {
	// Interfaces to browse on (required; never all of the machine's).
	Interfaces []string
	// Clock drives rounds, probes, expiry and debouncing (default: real).
	Clock clock.Clock
	// Debounce is the quiet period that ends a burst (default 250 ms).
	Debounce time.Duration
	// MaxDelay caps how long a burst is held back (default 2 s).
	MaxDelay time.Duration
	// BrowseInterval is the time between browse rounds (default 2 s).
	BrowseInterval time.Duration
	// InitialWait is when the first snapshot is emitted (default 1.5 s).
	InitialWait time.Duration
	// ProbeInterval is the time between liveness probes of announced
	// endpoints (default 1 s; negative disables probing).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe (default 800 ms), and each timeout
	// doubles the next of the same endpoint, up to ProbeBackoffLimit
	// times ProbeTimeout.
	ProbeTimeout time.Duration
	// NoAnswerTimeout removes a target that stopped answering (default
	// 3 browse rounds + 0.5 s).
	NoAnswerTimeout time.Duration
	// GoodbyeGrace delays removal after a goodbye (default 1 s, RFC 6762
	// §10.1; negative means at once).
	GoodbyeGrace time.Duration
	// ProbeFailures is the number of failed probes that remove a target
	// (default 2).
	ProbeFailures int
	// Verifier, when set, makes the browser ignore unsigned or forged
	// announcements (see LoadKey).
	Verifier Verifier
	// SignKey is a key file (LoadKey) used as Verifier when Verifier is nil.
	SignKey string
	// HTTPClient fetches compact announcements and probes endpoints.
	HTTPClient *http.Client
	// ProbeClient, when set, returns the client that probes the endpoint
	// of the announced target t; nil means HTTPClient. A coordinator gives
	// its client for t's agent, so that the probes and its requests to the
	// agent share one kept-alive connection.
	ProbeClient func(t *model.Target, endpoint string) *http.Client
	// Logger receives warnings (default: no logging).
	Logger *zap.Logger

	// noPassive disables the passive listener, so that a test sees what
	// the zeroconf rounds alone find.
	noPassive bool
}

// MDNSSource browses _disnix._tcp continuously. It implements Source.
type MDNSSource struct {
	cfg BrowserConfig
}

// NewMDNSSource returns a browser; it validates the configuration.
func NewMDNSSource(cfg BrowserConfig) (*MDNSSource, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("mDNS browser: no interface given (browsing is always bound to named interfaces)")
	}
	cfg.Clock = clock.OrReal(cfg.Clock)
	if cfg.Verifier == nil && cfg.SignKey != "" {
		k, err := LoadKey(cfg.SignKey)
		if err != nil {
			return nil, err
		}
		cfg.Verifier = k
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.BrowseInterval <= 0 {
		cfg.BrowseInterval = DefaultBrowseInterval
	}
	if cfg.BrowseInterval < time.Second/4 {
		cfg.BrowseInterval = time.Second / 4
	}
	if cfg.InitialWait <= 0 {
		cfg.InitialWait = DefaultInitialWait
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.NoAnswerTimeout <= 0 {
		cfg.NoAnswerTimeout = 3*cfg.BrowseInterval + 500*time.Millisecond
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: ProbeBackoffLimit * cfg.ProbeTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &MDNSSource{cfg: cfg}, nil
}

// RemovalBound is the documented worst case from a crash (no goodbye) of a
// machine without an announced endpoint to its removal event: the
// no-answer timeout plus one browse round plus the debounce period.
func (s *MDNSSource) RemovalBound() time.Duration {
	return s.cfg.NoAnswerTimeout + s.cfg.BrowseInterval + s.cfg.Debounce
}

type fetchResult struct {
	instance string
	obs      *Observation
	err      error
}

type probeResult struct {
	instance string
	ok       bool
	// timeout: the probe failed by timing out (not refused or reset).
	timeout bool
	err     error // why it failed
}

// massTimeouts holds back probe timeouts while most endpoints time out at
// once: the coordinator is then the one starved of CPU or cut off from the
// network, not most of its fleet dead at the same moment (a refused or
// reset connection always counts). Removing the fleet would only move
// every service onto the few targets still answering. A fleet that is
// really gone goes when its records' TTL expires.
type massTimeouts struct {
	window time.Duration
	recent map[string]time.Time // instance → its last timeout
}

// hold records a timeout of instance at now and reports whether it is held
// back: more than half of the n probed endpoints (at least 3) timed out
// within the window.
func (mt *massTimeouts) hold(instance string, now time.Time, n int) bool {
	if mt.recent == nil {
		mt.recent = map[string]time.Time{}
	}
	mt.recent[instance] = now
	for inst, at := range mt.recent {
		if now.Sub(at) > mt.window {
			delete(mt.recent, inst)
		}
	}
	return len(mt.recent) >= 3 && 2*len(mt.recent) > n
}

// txtCacheEntry remembers the last TXT record of an instance, so the same
// record is parsed (and warned about) once.
type txtCacheEntry struct {
	joined string
	obs    *Observation // nil: rejected, or waiting for a fetch
	seen   time.Time

	// prev is the record this one replaced at changed, by a record that
	// came through zeroconf when viaZeroconf.
	prev        string
	changed     time.Time
	viaZeroconf bool

	// rejected is the hostname claim of a record refused for its
	// signature (nil: none), a conflict while another instance holds it.
	rejected *Conflict
}

// queryHold: zeroconf v1.0.0 reads the records of queries as answers too,
// so a publisher still probing (RFC 6762 §8: three probes 250 ms apart, its
// proposed records in the authority section) would be reported before it
// has won its name, and one that loses the probe would appear with the
// other machine's name. A zeroconf entry for an instance named in a query
// within queryHold is ignored unless a response (seen by the passive
// listener) named the instance since; a publisher announces 250 ms after
// its last probe. The same holds after a goodbye: a zeroconf entry read
// from an answer just before it must not cancel it.
const queryHold = time.Second

// logHeldBack is the debug message for a zeroconf entry held back by
// queryHold.
const logHeldBack = "zeroconf entry held back: a query named its instance"

// zcDelay defers the records of zeroconf entries: both halves of the
// browser receive every answer, and the passive listener (which sees
// whether a packet is a query or a response, and reads goodbyes) is to
// read a packet first.
const zcDelay = 100 * time.Millisecond

// staleWindow: a record equal to the one just replaced, arriving through
// the other path (passive listener vs zeroconf) within this time, is the
// same packet overtaken on its way, not a revert (see handle).
const staleWindow = 500 * time.Millisecond

// overtaken says whether a TXT record (joined) that differs from ce is in
// fact the record ce replaced, arriving late. Both paths (passive listener
// and zeroconf) receive every answer, each through its own goroutines and
// channel, so an answer can reach the browser loop through one path after a
// newer one came through the other. A real revert within staleWindow is
// read on the next round.
func (ce *txtCacheEntry) overtaken(joined string, viaZeroconf bool, now time.Time) bool {
	return ce != nil && ce.changed != (time.Time{}) && joined == ce.prev &&
		now.Sub(ce.changed) < staleWindow && (viaZeroconf || ce.viaZeroconf)
}

// Run browses until ctx ends.
func (s *MDNSSource) Run(ctx context.Context, out chan<- Snapshot) error {
	ifaces, err := ResolveInterfaces(s.cfg.Interfaces)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The passive listener: every mDNS response on our interfaces,
	// including goodbyes and unsolicited announcements, which zeroconf's
	// browser does not report.
	msgs := make(chan inbound, 64)
	var conn *mdnsConn // also sends the queries that list known answers
	if !s.cfg.noPassive {
		conn, err = openMDNS(ifaces)
		if err != nil {
			return err
		}
		defer conn.Close()
		go conn.recv(msgs, ctx.Done(), func(bool) bool { return true })
	}
	// The active half: zeroconf browse rounds and lookups (zeroconf.go).
	zcRecords := make(chan *wireRecord, 64)
	zc := newZeroconfRounds(ifaces, zcRecords, s.cfg.Logger)
	var rounds sync.WaitGroup
	roundCancel := func() {}
	defer func() { roundCancel(); rounds.Wait() }()
	startRound := func(browse bool, lookups []string) {
		roundCancel() // ends the previous round: its Resolver closes
		rctx, c := context.WithCancel(ctx)
		roundCancel = c
		rounds.Add(1)
		go func() { defer rounds.Done(); zc.round(rctx, browse, lookups) }()
	}

	clk := s.cfg.Clock
	log := s.cfg.Logger
	table := NewMembership(MembershipConfig{
		NoAnswerTimeout: s.cfg.NoAnswerTimeout,
		GoodbyeGrace:    s.cfg.GoodbyeGrace,
		ProbeFailures:   s.cfg.ProbeFailures,
		ProbedEndpoints: s.cfg.ProbeInterval > 0,
	})
	deb := &Debouncer{Quiet: s.cfg.Debounce, MaxDelay: s.cfg.MaxDelay}
	cache := map[string]*txtCacheEntry{}
	// known: the PTR records the browse queries list (knownanswers.go).
	known := map[string]*knownPTR{}
	fetching := map[string]bool{}
	// unresolved holds instances seen in a PTR answer without their TXT
	// record: the next rounds ask for their SRV and TXT (per-instance lookup).
	unresolved := map[string]time.Time{}
	warnedFull := false
	// queried: instances named by records in a query (a probe's proposed
	// records, known answers) or by a goodbye, when; zeroconf entries for
	// them are held back until a response names them (see queryHold).
	queried := map[string]time.Time{}
	type zcPending struct {
		r  *wireRecord
		at time.Time
	}
	var zcQueue []zcPending
	zcT := clk.NewTimer(time.Hour)
	zcT.Stop()
	defer zcT.Stop()
	fetches := make(chan fetchResult, 16)
	probes := make(chan probeResult, 16)
	probing := map[string]bool{}
	// probeTimeouts: the backed-off timeouts of endpoints whose last probe
	// timed out (ProbeBackoffLimit).
	probeTimeouts := map[string]time.Duration{}
	// probeOK: the endpoints whose last probe was answered, which the
	// browse query may list as known answers (knownanswers.go).
	probeOK := map[string]bool{}
	mass := &massTimeouts{window: 2*s.cfg.ProbeInterval + ProbeBackoffLimit*s.cfg.ProbeTimeout}
	massWarned := false

	start := clk.Now()
	initialDone := false
	// Start-up queries at 0, 250 ms and 1 s, then every BrowseInterval.
	startup := []time.Duration{250 * time.Millisecond, time.Second}
	roundT := clk.NewTimer(0)
	probeT := clk.NewTimer(s.cfg.ProbeInterval)
	if s.cfg.ProbeInterval < 0 {
		probeT.Stop()
	}
	deadlineT := clk.NewTimer(time.Hour)
	deadlineT.Stop()
	initialT := clk.NewTimer(s.cfg.InitialWait)
	debT := clk.NewTimer(time.Hour)
	debT.Stop()
	defer func() {
		roundT.Stop()
		probeT.Stop()
		deadlineT.Stop()
		initialT.Stop()
		debT.Stop()
	}()

	logged := map[Conflict]bool{}
	emit := func(evs []Event, now time.Time) bool {
		snap := Snapshot{Infrastructure: table.Infrastructure(), Events: evs, At: now, Conflicts: conflicts(table, cache)}
		logged = logConflicts(log, snap, logged)
		select {
		case out <- snap:
			return true
		case <-ctx.Done():
			return false
		}
	}
	rearm := func() {
		now := clk.Now()
		if at, ok := table.NextDeadline(); ok {
			deadlineT.Reset(max(at.Sub(now), 0))
		} else {
			deadlineT.Stop()
		}
		if initialDone {
			if at, ok := deb.Deadline(); ok {
				debT.Reset(max(at.Sub(now), 0))
			} else {
				debT.Stop()
			}
		}
	}
	handle := func(r *wireRecord, now time.Time) {
		if r.goodbye {
			deb.Add(table.Put(Observation{Instance: r.instance, Goodbye: true}, now), now)
			return
		}
		if !r.hasTXT {
			// An answer without TXT proves liveness of a known instance;
			// an unknown one is looked up.
			if table.Has(r.instance) {
				deb.Add(table.Put(Observation{Instance: r.instance, TTL: r.ttl}, now), now)
			} else if cache[r.instance] == nil && len(unresolved) < MaxInstances {
				unresolved[r.instance] = now
			}
			return
		}
		delete(unresolved, r.instance)
		joined := strings.Join(r.txt, "\x00")
		ce := cache[r.instance]
		if ce != nil {
			ce.seen = now
		}
		if ce != nil && ce.joined == joined {
			if ce.obs != nil {
				o := *ce.obs
				o.TTL = r.ttl
				deb.Add(table.Put(o, now), now)
			}
			return
		}
		if ce == nil && len(cache) >= MaxInstances {
			if !warnedFull {
				warnedFull = true
				log.Warn("too many instances; ignoring new ones", zap.Int("max", MaxInstances), zap.String("instance", r.instance))
			}
			return
		}
		if ce.overtaken(joined, r.viaZeroconf, now) {
			return
		}
		nce := &txtCacheEntry{joined: joined, seen: now, viaZeroconf: r.viaZeroconf}
		if ce != nil {
			nce.prev, nce.changed = ce.joined, now
		}
		ce = nce
		cache[r.instance] = ce
		ann, warns, err := ParseTXT(r.txt, hostnameFromInstance(r.instance))
		for _, w := range warns {
			log.Warn("ignoring malformed TXT string", zap.String("instance", r.instance), zap.Error(w))
		}
		if err != nil {
			log.Warn("ignoring announcement", zap.String("instance", r.instance), zap.Error(err))
			return
		}
		// reject logs a refused signature and keeps the claim, a
		// conflict while another instance holds the hostname.
		reject := func(err error) {
			log.Warn("ignoring announcement not signed with the verify key", zap.String("instance", r.instance),
				zap.String("hostname", ann.Target.Name), zap.String("endpoint", ann.Endpoint), zap.Error(err))
			ce.rejected = &Conflict{Hostname: ann.Target.Name, Ignored: Claim{r.instance, ann.Endpoint}, Reason: "not signed with the verify key: " + err.Error()}
			if _, held := table.Holder(ann.Target.Name); held {
				deb.Add([]Event{{Kind: EventConflict, Target: ann.Target.Name, Reason: ReasonConflict, At: now}}, now)
			}
		}
		if ann.Compact {
			if err := ann.verifySig(ann.Target.Name, s.cfg.Verifier); err != nil {
				reject(err) // before any fetch: a stranger's endpoint is never asked
				return
			}
			if err := endpointOnHost(ann.Endpoint, r.addrs); err != nil {
				log.Warn("ignoring compact announcement", zap.String("instance", r.instance), zap.Error(err))
				if len(r.addrs) == 0 {
					delete(cache, r.instance) // judged again by an answer that carries addresses
				}
				return
			}
			if !fetching[r.instance] {
				fetching[r.instance] = true
				go s.fetch(ctx, r.instance, ann, r.ttl, fetches)
			}
			return
		}
		if err := ann.verifySig(ann.Target.Name, s.cfg.Verifier); err != nil {
			reject(err)
			return
		}
		if err := ann.Verify(ann.Target, s.cfg.Verifier); err != nil {
			log.Warn("ignoring announcement", zap.String("instance", r.instance), zap.Error(err))
			return
		}
		hash := ann.Hash
		if hash == "" {
			hash, _ = ContentHash(ann.Target)
		}
		obs := &Observation{Instance: r.instance, Target: ann.Target, Hash: hash, Endpoint: ann.Endpoint, TTL: r.ttl}
		ce.obs = obs
		deb.Add(table.Put(*obs, now), now)
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case in := <-msgs:
			now := clk.Now()
			if !in.msg.Response {
				for _, inst := range queriedInstances(in.msg) {
					if _, ok := queried[inst]; ok || len(queried) < MaxInstances {
						queried[inst] = now
					}
				}
				break
			}
			for _, r := range recordsOf(in.msg) {
				r.addrs = senderAddrs(in, r.host)
				if r.goodbye {
					if _, ok := queried[r.instance]; ok || len(queried) < MaxInstances {
						queried[r.instance] = now
					}
					delete(known, r.instance)
				} else {
					delete(queried, r.instance)
					if _, ok := known[r.instance]; r.ptrTTL > 0 && (ok || len(known) < MaxInstances) {
						known[r.instance] = newKnownPTR(now, r.ptrTTL, r.ttl)
					}
				}
				handle(r, now)
			}
		case r := <-zcRecords:
			// Deferred by zcDelay, so that the passive listener has read
			// the same packet first (and seen whether it was a query).
			if len(zcQueue) < MaxInstances {
				zcQueue = append(zcQueue, zcPending{r: r, at: clk.Now().Add(zcDelay)})
				if len(zcQueue) == 1 {
					zcT.Reset(zcDelay)
				}
			}
		case <-zcT.C():
			now := clk.Now()
			i := 0
			for ; i < len(zcQueue) && !zcQueue[i].at.After(now); i++ {
				r := zcQueue[i].r
				if at, ok := queried[r.instance]; ok {
					if now.Sub(at) < queryHold {
						log.Debug(logHeldBack, zap.String("instance", r.instance))
						continue // maybe read from a query (see queryHold)
					}
					delete(queried, r.instance)
				}
				// As seen when it arrived, so that the deferral does not
				// extend the no-answer deadline.
				handle(r, zcQueue[i].at.Add(-zcDelay))
			}
			zcQueue = append(zcQueue[:0], zcQueue[i:]...)
			if len(zcQueue) > 0 {
				zcT.Reset(max(zcQueue[0].at.Sub(now), 0))
			}
		case fr := <-fetches:
			delete(fetching, fr.instance)
			now := clk.Now()
			if fr.err != nil {
				log.Warn("ignoring compact announcement", zap.String("instance", fr.instance), zap.Error(fr.err))
				delete(cache, fr.instance) // retry on the next answer
				break
			}
			if ce := cache[fr.instance]; ce != nil {
				ce.obs = fr.obs
			}
			deb.Add(table.Put(*fr.obs, now), now)
		case <-roundT.C():
			now := clk.Now()
			var lookups []string
			for inst, seen := range unresolved {
				if now.Sub(seen) > s.cfg.NoAnswerTimeout {
					delete(unresolved, inst)
				} else if len(lookups) < maxLookups {
					lookups = append(lookups, inst)
				}
			}
			// TXT re-check: a member whose TXT record was not seen for two
			// rounds (only PTR/SRV answers refreshed it) is looked up.
			for inst, ce := range cache {
				if len(lookups) >= maxLookups {
					break
				}
				heard := ce.seen
				if until := listedUntil(known, inst); until.After(heard) {
					heard = until // listed: silent until then
				}
				if _, ok := unresolved[inst]; !ok && table.Has(inst) && now.Sub(heard) > 2*s.cfg.BrowseInterval {
					lookups = append(lookups, inst)
				}
			}
			s.forget(cache, table, now)
			for inst := range known {
				if cache[inst] == nil {
					delete(known, inst)
				}
			}
			for inst, at := range queried {
				if now.Sub(at) >= queryHold {
					delete(queried, inst)
				}
			}
			// The browse query is ours whenever the passive listener
			// runs: it lists known answers (zeroconf v1.0.0 cannot), and
			// every answer reaches the listener. A zeroconf Browse would
			// open one more socket on port 5353, which each answer fills
			// as well, with the kernel's default receive buffer (some 90
			// packets): at start-up, a hundred machines answering while
			// the host was busy overflowed it. zeroconf browses only
			// without the listener; its lookups run either way.
			browse := conn == nil
			if conn != nil {
				q := ptrQuery(known, func(inst string) bool {
					ce := cache[inst]
					return probeOK[inst] && ce != nil && ce.obs != nil
				}, now)
				if err := conn.send(q); err != nil {
					log.Debug("mDNS query", zap.Error(err))
				}
			}
			startRound(browse, lookups)
			next := s.cfg.BrowseInterval
			if len(startup) > 0 {
				next = startup[0] - now.Sub(start)
				startup = startup[1:]
				if next < 0 {
					next = 0
				}
			}
			roundT.Reset(next)
		case <-probeT.C():
			eps := table.Endpoints()
			maps.DeleteFunc(probeTimeouts, func(inst string, _ time.Duration) bool { _, ok := eps[inst]; return !ok })
			maps.DeleteFunc(probeOK, func(inst string, _ bool) bool { _, ok := eps[inst]; return !ok })
			for inst, ep := range eps {
				if !probing[inst] {
					probing[inst] = true
					client := s.cfg.HTTPClient
					if s.cfg.ProbeClient != nil {
						if c := s.cfg.ProbeClient(table.Target(inst), ep); c != nil {
							client = c
						}
					}
					go s.probe(ctx, client, inst, ep, cmp.Or(probeTimeouts[inst], s.cfg.ProbeTimeout), probes)
				}
			}
			probeT.Reset(s.cfg.ProbeInterval)
		case pr := <-probes:
			delete(probing, pr.instance)
			if pr.ok {
				probeOK[pr.instance] = true // dropped with its endpoint at the next tick
			} else {
				delete(probeOK, pr.instance)
			}
			streak := pr.timeout && probeTimeouts[pr.instance] != 0 // not the first timeout in a row
			if pr.timeout {
				probeTimeouts[pr.instance] = backedOff(probeTimeouts[pr.instance], s.cfg.ProbeTimeout)
			} else {
				delete(probeTimeouts, pr.instance)
			}
			now := clk.Now()
			if pr.timeout && mass.hold(pr.instance, now, len(table.Endpoints())) {
				if !massWarned {
					log.Warn("most probed endpoints time out at once: their timeouts do not count until fewer do (this host is starved or cut off)")
					massWarned = true
				}
				break
			}
			if pr.timeout && !streak {
				break // the first timeout only backs off (ProbeBackoffLimit)
			}
			if pr.ok {
				massWarned = false
			}
			evs := table.ProbeResult(pr.instance, pr.ok, now)
			for _, e := range evs {
				if e.Kind == EventRemoved {
					log.Info("endpoint removed by its failed probes", zap.String("instance", pr.instance), zap.Error(pr.err))
				}
			}
			deb.Add(evs, now)
		case <-deadlineT.C():
			now := clk.Now()
			deb.Add(table.Advance(now), now)
			s.forget(cache, table, now)
		case <-initialT.C():
			initialDone = true
			now := clk.Now()
			evs, _ := deb.Take(now.Add(24 * time.Hour))
			if !emit(evs, now) {
				return nil
			}
		case <-debT.C():
			now := clk.Now()
			if evs, ok := deb.Take(now); ok {
				if !emit(evs, now) {
					return nil
				}
			}
		}
		rearm()
	}
}

// conflicts returns the table's conflicts and the claims refused for their
// signature on hostnames an instance holds.
func conflicts(table *Membership, cache map[string]*txtCacheEntry) []Conflict {
	out := table.Conflicts()
	for _, ce := range cache {
		if ce.rejected == nil {
			continue
		}
		if kept, ok := table.Holder(ce.rejected.Hostname); ok && kept.Instance != ce.rejected.Ignored.Instance {
			c := *ce.rejected
			c.Kept = kept
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Hostname != out[j].Hostname {
			return out[i].Hostname < out[j].Hostname
		}
		return out[i].Ignored.Instance < out[j].Ignored.Instance
	})
	return out
}

// logConflicts warns once about each conflict of snap not in logged, and
// says which instance took a hostname over; it returns the conflicts
// logged.
func logConflicts(log *zap.Logger, snap Snapshot, logged map[Conflict]bool) map[Conflict]bool {
	cur := map[Conflict]bool{}
	for _, c := range snap.Conflicts {
		cur[c] = true
		if !logged[c] {
			log.Warn("two instances claim one hostname; the claim of the second is ignored", zap.String("hostname", c.Hostname),
				zap.String("kept", c.Kept.Instance), zap.String("keptEndpoint", c.Kept.Endpoint),
				zap.String("ignored", c.Ignored.Instance), zap.String("ignoredEndpoint", c.Ignored.Endpoint), zap.String("reason", c.Reason))
		}
	}
	for _, e := range snap.Events {
		if e.Kind == EventChanged && e.Reason == ReasonTakeover {
			var ep any
			if t := snap.Infrastructure[e.Target]; t != nil {
				ep = t.Properties[AgentURLProperty]
			}
			log.Warn("the instance holding a hostname left; another instance claiming it took over", zap.String("hostname", e.Target), zap.Any("endpoint", ep))
		}
	}
	return cur
}

// MaxInstances bounds the instances a browser keeps track of, so a flood of
// forged announcements cannot exhaust memory.
const MaxInstances = 4096

// maxLookups bounds the zeroconf Lookups of one round (each opens its own
// Resolver, i.e. one socket, for the round).
const maxLookups = 8

// forget drops cached TXT records of instances that left the table and have
// not been heard of for the no-answer timeout, so a returning machine is
// parsed afresh while a rejected one is not re-parsed (and warned about)
// on every answer.
func (s *MDNSSource) forget(cache map[string]*txtCacheEntry, table *Membership, now time.Time) {
	for inst, ce := range cache {
		if !table.Has(inst) && now.Sub(ce.seen) > s.cfg.NoAnswerTimeout {
			delete(cache, inst)
		}
	}
}

func hostnameFromInstance(instance string) string {
	if strings.HasPrefix(instance, InstancePrefix) && len(instance) > len(InstancePrefix) {
		return instance[len(InstancePrefix):]
	}
	return ""
}

// fetch gets the full target of a compact announcement from its endpoint
// and checks it against the announced hash and signature.
func (s *MDNSSource) fetch(ctx context.Context, instance string, ann *Announcement, ttl time.Duration, out chan<- fetchResult) {
	res := fetchResult{instance: instance}
	t, err := FetchTarget(ctx, s.cfg.HTTPClient, ann.Endpoint, ann.Target.Name)
	if err == nil {
		t, err = NormalizeTarget(t)
	}
	if err == nil {
		err = ann.Verify(t, s.cfg.Verifier)
	}
	if err == nil && ann.Hash == "" {
		err = errors.New("compact announcement without a hash")
	}
	if err != nil {
		res.err = err
	} else {
		res.obs = &Observation{Instance: instance, Target: t, Hash: ann.Hash, Endpoint: ann.Endpoint, TTL: ttl}
	}
	select {
	case out <- res:
	case <-ctx.Done():
	}
}

// maxTargetDoc bounds a fetched target document.
const maxTargetDoc = 4 << 20

// endpointOnHost checks that a compact announcement's endpoint names the
// announcing host itself: its host must be an IP address among addrs (the
// address the announcement came from, see senderAddrs, or the A/AAAA
// records of a zeroconf entry). A stranger's
// announcement can thus not make the browser fetch from a third machine.
func endpointOnHost(endpoint string, addrs []net.IP) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return fmt.Errorf("endpoint %q: expected the IP address of the announcing host, not a name", endpoint)
	}
	for _, a := range addrs {
		if a.Equal(ip) {
			return nil
		}
	}
	return fmt.Errorf("endpoint %q is not on the announcing host (its addresses: %v)", endpoint, addrs)
}

// senderAddrs are the announcing host's addresses for a record of in about
// host: the packet's source address or, where it has none (0.0.0.0, as on
// lo), the message's A/AAAA records of host.
func senderAddrs(in inbound, host string) []net.IP {
	if in.src != nil && !in.src.IP.IsUnspecified() {
		return []net.IP{in.src.IP}
	}
	var addrs []net.IP
	for _, rr := range append(append([]dns.RR(nil), in.msg.Answer...), in.msg.Extra...) {
		if !strings.EqualFold(rr.Header().Name, host) {
			continue
		}
		switch x := rr.(type) {
		case *dns.A:
			addrs = append(addrs, x.A)
		case *dns.AAAA:
			addrs = append(addrs, x.AAAA)
		}
	}
	return addrs
}

// targetURL is the only URL fetched from an announced endpoint: its scheme
// and host:port with TargetPath. The endpoint's own path, query and
// fragment are never used (ParseTXT refuses the latter two).
func targetURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("endpoint %q: expected http(s)://HOST[:PORT]", endpoint)
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: TargetPath}).String(), nil
}

// FetchTarget GETs TargetPath on the endpoint's host and reads the target
// model (the JSON form of one infrastructure target). name becomes the
// target's name.
func FetchTarget(ctx context.Context, client *http.Client, endpoint, name string) (*model.Target, error) {
	url, err := targetURL(endpoint)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTargetDoc+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	if len(data) > maxTargetDoc {
		return nil, fmt.Errorf("fetch %s: document larger than %d bytes", url, maxTargetDoc)
	}
	v, err := model.DecodeValue(data, model.FormatJSON, url)
	if err != nil {
		return nil, err
	}
	return model.TargetFromValue(name, v, url)
}

// backedOff is the probe timeout after one that timed out with cur (0:
// base): twice as long, up to ProbeBackoffLimit times base.
func backedOff(cur, base time.Duration) time.Duration {
	return min(2*max(cur, base), ProbeBackoffLimit*base)
}

// probe checks within limit, with client, that an endpoint answers HTTP
// at all.
func (s *MDNSSource) probe(ctx context.Context, client *http.Client, instance, endpoint string, limit time.Duration, out chan<- probeResult) {
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	ok, timeout := false, false
	u, err := targetURL(endpoint)
	var req *http.Request
	if err == nil {
		req, err = http.NewRequestWithContext(pctx, http.MethodHead, u, nil)
	}
	if err == nil {
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			resp.Body.Close()
			ok = true
		} else {
			var ne net.Error
			timeout = errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
		}
	}
	select {
	case out <- probeResult{instance: instance, ok: ok, timeout: timeout, err: err}:
	case <-ctx.Done():
	}
}

// TargetHandler serves a target model at TargetPath as JSON (GET and HEAD),
// for a publisher's --serve and for the deployment agent to mount. get is
// called per request, so the handler follows property changes.
func TargetHandler(get func() *model.Target) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		t := get()
		if t == nil {
			http.Error(w, "no target yet", http.StatusServiceUnavailable)
			return
		}
		data, err := json.Marshal(targetAttrs(t))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if h, err := ContentHash(t); err == nil {
			w.Header().Set("X-Dydisnix-Hash", h)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
}
