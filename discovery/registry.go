package discovery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults of RegistryConfig.
const (
	// DefaultRegistryTTL is the lease TTL of a registration: a machine
	// that stops renewing it (a crash, a partition) is removed within
	// about this long.
	DefaultRegistryTTL = 3 * time.Second
	// DefaultRegistryPrefix is the key prefix of the default fleet; a
	// registration lives under <prefix>/targets/<hostname>.
	DefaultRegistryPrefix = "/dydisnix/default"
	// DefaultRegistryDialTimeout bounds connecting to etcd.
	DefaultRegistryDialTimeout = 5 * time.Second
	// DefaultEtcdPort is the port of an endpoint given without one.
	DefaultEtcdPort = "2379"
)

// RegistryConfig says how to reach the etcd registry and where in it the
// fleet lives. The zero value (no endpoints) means no registry.
type RegistryConfig struct {
	// Endpoints are etcd client URLs (http://host:2379 or https://…), as
	// ParseRegistryURL returns them.
	Endpoints []string
	// CAFile is the CA that signed the etcd servers' certificates; set
	// (or CertFile) makes the endpoints https.
	CAFile string
	// CertFile and KeyFile are this process's client certificate for
	// etcd (both or neither).
	CertFile, KeyFile string
	// Prefix is the fleet's key prefix (default DefaultRegistryPrefix),
	// "/" followed by path elements, without a trailing "/".
	Prefix string
	// TTL is the lease TTL of registrations (default DefaultRegistryTTL;
	// etcd counts in whole seconds, at least 1).
	TTL time.Duration
	// DialTimeout bounds connecting (default DefaultRegistryDialTimeout).
	DialTimeout time.Duration
	// Logger receives the client's warnings (default: none).
	Logger *zap.Logger
}

// Enabled reports whether a registry is configured.
func (c RegistryConfig) Enabled() bool { return len(c.Endpoints) > 0 }

// ParseRegistryURL reads a --registry value: "etcd://host:2379,host2:2379"
// (http, or https when tlsFiles is true), "etcds://host,…" (always https),
// or a comma-separated list of http(s):// URLs as etcd itself takes them.
// A host without a port gets 2379.
func ParseRegistryURL(s string, tlsFiles bool) ([]string, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(s), "://")
	if !ok {
		return nil, fmt.Errorf("registry %q: expected etcd://HOST[:PORT][,HOST[:PORT]…]", s)
	}
	var httpScheme string
	switch scheme {
	case "etcd":
		httpScheme = "http"
		if tlsFiles {
			httpScheme = "https"
		}
	case "etcds":
		httpScheme = "https"
	case "http", "https":
		// etcd's own form: every element carries its scheme.
		var eps []string
		for _, u := range strings.Split(s, ",") {
			sch, hp, ok := strings.Cut(strings.TrimSpace(u), "://")
			if !ok || (sch != "http" && sch != "https") {
				return nil, fmt.Errorf("registry %q: element %q: expected http://HOST:PORT or https://HOST:PORT", s, u)
			}
			ep, err := registryHost(sch, hp)
			if err != nil {
				return nil, fmt.Errorf("registry %q: %w", s, err)
			}
			eps = append(eps, ep)
		}
		return eps, nil
	default:
		return nil, fmt.Errorf("registry %q: unknown scheme %q (expected etcd:// or etcds://)", s, scheme)
	}
	var eps []string
	for _, hp := range strings.Split(rest, ",") {
		ep, err := registryHost(httpScheme, hp)
		if err != nil {
			return nil, fmt.Errorf("registry %q: %w", s, err)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// registryHost checks one HOST[:PORT] and returns scheme://host:port.
func registryHost(scheme, hp string) (string, error) {
	hp = strings.TrimSuffix(strings.TrimSpace(hp), "/")
	if hp == "" {
		return "", errors.New("empty host")
	}
	if strings.ContainsAny(hp, "/?#@ ") {
		return "", fmt.Errorf("%q: expected HOST[:PORT] (no user, path or query)", hp)
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		// No port (a bare host or a bracketed IPv6 address).
		host, port = strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), DefaultEtcdPort
		if strings.Contains(host, "[") || strings.Contains(host, "]") {
			return "", fmt.Errorf("%q: expected HOST[:PORT]", hp)
		}
	}
	if host == "" {
		return "", fmt.Errorf("%q: empty host", hp)
	}
	var n int
	if _, err := fmt.Sscanf(port, "%d", &n); err != nil || n < 1 || n > 65535 || fmt.Sprint(n) != port {
		return "", fmt.Errorf("%q: port %q is not 1-65535", hp, port)
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// NormalizePrefix checks a key prefix and returns it with one leading "/"
// and no trailing "/" ("" gives DefaultRegistryPrefix).
func NormalizePrefix(p string) (string, error) {
	if p == "" {
		return DefaultRegistryPrefix, nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("registry prefix %q: must start with /", p)
	}
	clean := path.Clean(p)
	if clean == "/" {
		return "", fmt.Errorf("registry prefix %q: the root is not a fleet's prefix", p)
	}
	if strings.ContainsAny(clean, " \t\n") {
		return "", fmt.Errorf("registry prefix %q: no white space allowed", p)
	}
	return clean, nil
}

// Check validates the configuration (prefix, TTL, TLS files) and fills in
// the defaults.
func (c *RegistryConfig) Check() error {
	p, err := NormalizePrefix(c.Prefix)
	if err != nil {
		return err
	}
	c.Prefix = p
	switch {
	case c.TTL == 0:
		c.TTL = DefaultRegistryTTL
	case c.TTL < time.Second:
		return fmt.Errorf("registry TTL %s: etcd leases count whole seconds; give at least 1s", c.TTL)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultRegistryDialTimeout
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("--registry-cert and --registry-key go together")
	}
	return nil
}

// Key returns the key of parts under the fleet's prefix:
// Key("targets", "web1") is "/dydisnix/default/targets/web1".
func (c RegistryConfig) Key(parts ...string) string {
	p := c.Prefix
	if p == "" {
		p = DefaultRegistryPrefix
	}
	return p + "/" + strings.Join(parts, "/")
}

// TargetsPrefix is the prefix of the fleet's registrations, ending in "/".
func (c RegistryConfig) TargetsPrefix() string { return c.Key("targets") + "/" }

// TTLSeconds is the lease TTL in etcd's whole seconds (rounded up).
func (c RegistryConfig) TTLSeconds() int64 {
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultRegistryTTL
	}
	return int64((ttl + time.Second - 1) / time.Second)
}

// TLS returns the client TLS configuration for etcd: nil when neither a CA
// nor a client certificate is configured and no endpoint is https.
func (c RegistryConfig) TLS() (*tls.Config, error) {
	https := false
	for _, e := range c.Endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if c.CAFile == "" && c.CertFile == "" && !https {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		data, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--registry-ca: %w", err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--registry-ca %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = p
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--registry-cert/--registry-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Client returns a client of the configured etcd cluster. Connecting is
// lazy (etcd's client dials in the background): the first request fails
// if no endpoint answers within its context.
func (c RegistryConfig) Client() (*clientv3.Client, error) {
	if !c.Enabled() {
		return nil, errors.New("no registry configured (--registry etcd://HOST:2379)")
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	tlsCfg, err := c.TLS()
	if err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            c.Endpoints,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		TLS:                  tlsCfg,
		Logger:               log.Named("etcd"),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	return cli, nil
}
