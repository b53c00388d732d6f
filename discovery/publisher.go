package discovery

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/model"
)

// DefaultPort is the SRV port announced: 22, the SSH port of Disnix's
// default client interface, as the original publisher does.
const DefaultPort = 22

// DefaultTTL is the TTL of every announced record. RFC 6762 recommends 120 s
// for host and SRV records; using it for PTR and TXT too makes passive caches
// (Avahi) forget a crashed machine within two minutes.
const DefaultTTL = 120

// PublisherConfig configures NewPublisher.
type PublisherConfig struct {
	// Interfaces to announce on (required; never all of the machine's).
	Interfaces []string
	// Target is the machine's properties and containers. The hostname rule
	// applies (ApplyHostname). When nil, PropertiesFile or PropertiesCommand
	// is read at Run.
	Target *model.Target
	// PropertiesFile is re-read and re-announced whenever it changes
	// (fsnotify), when Target is nil.
	PropertiesFile string
	// PropertiesCommand prints the machine as Nix (e.g. DysnomiaCommand),
	// read once at Run, when Target and PropertiesFile are empty.
	PropertiesCommand string
	// Endpoint is the base URL of the agent (or of the publisher's own
	// server) that serves TargetPath, e.g. "http://10.0.0.2:9001".
	Endpoint string
	// Port is the SRV port (default 22).
	Port int
	// TTL of the records in seconds (default 120).
	TTL uint32
	// Signer signs the announcements when set.
	Signer Signer
	// SignKey is a key file (LoadKey) used as Signer when Signer is nil.
	SignKey string
	// ForceCompact always publishes the compact form (needs Endpoint).
	ForceCompact bool
	// Addresses are the IP addresses announced for the host (default: the
	// addresses of Interfaces).
	Addresses []string
	// Logger receives progress and warnings (default: none).
	Logger *zap.Logger
}

// Publisher announces one machine over mDNS until its Run ends; then it
// says goodbye (TTL 0).
type Publisher struct {
	cfg    PublisherConfig
	ifaces []net.Interface
	log    *zap.Logger

	mu      sync.Mutex
	target  *model.Target // normalised, named
	txt     []string
	compact bool
	resp    *responder
	stop    chan struct{}
	served  chan struct{}
	inst    string
}

// NewPublisher validates the configuration.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	ifaces, err := ResolveInterfaces(cfg.Interfaces)
	if err != nil {
		return nil, fmt.Errorf("mDNS publisher: %w", err)
	}
	if cfg.Signer == nil && cfg.SignKey != "" {
		k, err := LoadKey(cfg.SignKey)
		if err != nil {
			return nil, err
		}
		if !k.CanSign() {
			return nil, fmt.Errorf("sign key %s: a public key cannot sign", cfg.SignKey)
		}
		cfg.Signer = k
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.Endpoint != "" && !strings.HasPrefix(cfg.Endpoint, "http://") && !strings.HasPrefix(cfg.Endpoint, "https://") {
		return nil, fmt.Errorf("endpoint %q: expected an http:// or https:// URL", cfg.Endpoint)
	}
	if cfg.Target == nil && cfg.PropertiesFile == "" && cfg.PropertiesCommand == "" {
		cfg.Target = &model.Target{Properties: map[string]any{}}
	}
	return &Publisher{cfg: cfg, ifaces: ifaces, log: cfg.Logger}, nil
}

// Target returns the announced target (normalised), or nil before Run has
// read it. Use it with TargetHandler.
func (p *Publisher) Target() *model.Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.target == nil {
		return nil
	}
	return p.target.Clone()
}

// TXT returns the announced TXT strings and whether they are compact.
func (p *Publisher) TXT() ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.txt...), p.compact
}

// Instance returns the announced instance name.
func (p *Publisher) Instance() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inst
}

// prepare applies the hostname rule, normalises and encodes a target.
func (p *Publisher) prepare(t *model.Target) (*model.Target, []string, bool, error) {
	t, err := ApplyHostname(t)
	if err != nil {
		return nil, nil, false, err
	}
	if len(t.Containers) == 0 {
		t.Containers = nil
	}
	n, err := NormalizeTarget(t)
	if err != nil {
		return nil, nil, false, err
	}
	if len(n.Containers) == 0 {
		n.Containers = nil
	}
	if len(InstancePrefix+n.Name) > 63 {
		return nil, nil, false, fmt.Errorf("instance name %q is longer than 63 bytes", InstancePrefix+n.Name)
	}
	txt, compact, err := EncodeTXT(n, EncodeOptions{Endpoint: p.cfg.Endpoint, Signer: p.cfg.Signer, ForceCompact: p.cfg.ForceCompact})
	if err != nil {
		return nil, nil, false, fmt.Errorf("target %s: %w", n.Name, err)
	}
	return n, txt, compact, nil
}

// SetTarget announces new properties at once (a TXT announcement with the
// cache-flush bit). A new hostname re-registers the instance.
func (p *Publisher) SetTarget(t *model.Target) error {
	n, txt, compact, err := p.prepare(t)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target, p.txt, p.compact = n, txt, compact
	if p.resp == nil {
		return nil
	}
	if InstancePrefix+n.Name != p.inst {
		p.shutdownLocked()
		return p.registerLocked()
	}
	p.resp.setTXT(txt)
	if err := p.resp.announceTXT(); err != nil {
		p.log.Warn("TXT announcement failed", zap.Error(err))
	}
	// RFC 6762 §8.4: a changed record is announced like a new one, twice
	// a second apart. A browser that lists this machine's PTR as a known
	// answer hears its TXT only from announcements until it stops listing
	// it, so one lost packet must not hide a change for a minute.
	resp := p.resp
	time.AfterFunc(time.Second, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.resp == resp {
			_ = resp.announceTXT()
		}
	})
	p.log.Info("re-announced", zap.String("instance", p.inst), zap.Bool("compact", compact))
	return nil
}

// wireTXT escapes TXT strings for miekg/dns.
func wireTXT(txt []string) []string {
	out := make([]string, len(txt))
	for i, s := range txt {
		out[i] = txtToWire(s)
	}
	return out
}

func (p *Publisher) addresses() []string {
	if len(p.cfg.Addresses) > 0 {
		return p.cfg.Addresses
	}
	var out, loop []string
	for _, ifi := range p.ifaces {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ipn.IP.IsLoopback() {
				loop = append(loop, ipn.IP.String())
				continue
			}
			if ipn.IP.To4() == nil && !ipn.IP.IsGlobalUnicast() && !ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, ipn.IP.String())
		}
	}
	if len(out) == 0 {
		return loop
	}
	return out
}

func (p *Publisher) registerLocked() error {
	p.inst = InstancePrefix + p.target.Name
	addrs := p.addresses()
	if len(addrs) == 0 {
		return fmt.Errorf("no IP address on %s to announce", ifaceNames(p.ifaces))
	}
	var ips []net.IP
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil {
			ips = append(ips, ip)
		} else {
			return fmt.Errorf("address %q is not an IP address", a)
		}
	}
	conn, err := openMDNS(p.ifaces)
	if err != nil {
		return fmt.Errorf("announce %s on %s: %w", p.inst, ifaceNames(p.ifaces), err)
	}
	p.resp = &responder{
		conn: conn, instance: p.inst, host: hostLabel(p.target.Name) + ".local.",
		port: p.cfg.Port, ttl: p.cfg.TTL, txt: p.txt, ips: ips,
	}
	p.stop, p.served = make(chan struct{}), make(chan struct{})
	ready := make(chan error, 1)
	go func(r *responder, stop, served chan struct{}) {
		defer close(served)
		r.serve(stop, ready)
	}(p.resp, p.stop, p.served)
	if err := <-ready; err != nil {
		close(p.stop)
		conn.Close()
		<-p.served
		p.resp = nil
		return fmt.Errorf("announce %s on %s: %w (is the hostname property unique?)", p.inst, ifaceNames(p.ifaces), err)
	}
	p.log.Info("announcing", zap.String("instance", p.inst), zap.Strings("interfaces", p.cfg.Interfaces), zap.Bool("compact", p.compact), zap.Int("txtStrings", len(p.txt)))
	return nil
}

// shutdownLocked stops answering and sends the goodbye twice, 100 ms
// apart, so a single lost packet does not leave browsers waiting for the
// no-answer timeout.
func (p *Publisher) shutdownLocked() {
	if p.resp == nil {
		return
	}
	close(p.stop)
	_ = p.resp.goodbye()
	time.Sleep(100 * time.Millisecond)
	_ = p.resp.goodbye()
	p.resp.conn.Close()
	<-p.served
	p.resp = nil
	p.log.Info("goodbye sent", zap.String("instance", p.inst))
}

func hostLabel(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "disnix"
	}
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

func ifaceNames(ifaces []net.Interface) string {
	names := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		names[i] = ifi.Name
	}
	return strings.Join(names, ",")
}

func (p *Publisher) load(ctx context.Context) (*model.Target, error) {
	switch {
	case p.cfg.Target != nil:
		return p.cfg.Target, nil
	case p.cfg.PropertiesFile != "":
		return LoadTargetFile(ctx, p.cfg.PropertiesFile)
	default:
		return TargetFromCommand(ctx, p.cfg.PropertiesCommand)
	}
}

// Run announces the machine until ctx ends, then sends a goodbye. With a
// PropertiesFile, a change of the file is announced at once; a file that
// cannot be read keeps the previous announcement (with a warning).
func (p *Publisher) Run(ctx context.Context) error {
	var fw *FileWatcher
	if p.cfg.Target == nil && p.cfg.PropertiesFile != "" {
		var err error
		if fw, err = NewFileWatcher(p.cfg.PropertiesFile); err != nil { // before loading: no change is missed
			return err
		}
		defer fw.Close() // Run closes it too: closing twice is harmless
	}
	p.mu.Lock()
	preset := p.target // SetTarget called before Run wins over the configuration
	p.mu.Unlock()
	t := preset
	if t == nil {
		var err error
		if t, err = p.load(ctx); err != nil {
			return err
		}
	}
	n, txt, compact, err := p.prepare(t)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.target, p.txt, p.compact = n, txt, compact
	err = p.registerLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		p.mu.Lock()
		p.shutdownLocked()
		p.mu.Unlock()
	}()
	if fw == nil {
		<-ctx.Done()
		return nil
	}
	// Let an editor finish writing: a reload once the file was quiet for
	// 50 ms.
	return fw.runDebounced(ctx, nil, 50*time.Millisecond, func(ctx context.Context) {
		t, err := LoadTargetFile(ctx, p.cfg.PropertiesFile)
		if err == nil {
			err = p.SetTarget(t)
		}
		if err != nil {
			p.log.Warn("keeping the previous announcement", zap.Error(err))
		}
	})
}
