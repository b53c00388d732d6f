package deployer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/model"
)

// AgentTLS says how a coordinator reaches the agents: over HTTPS, trusting
// only the fleet CA and requiring each agent's certificate to name its
// target's hostname (see TargetHostname), presenting the coordinator's
// certificate; plain HTTP only with InsecureHTTP. The zero value (and a
// nil *AgentTLS) reaches no agent: every URL is refused with an error
// naming the target, before anything is sent.
//
// The HTTP clients it returns are cached per scheme and hostname, so the
// connections to one agent are reused.
type AgentTLS struct {
	// Config is the coordinator's TLS configuration
	// (fleettls.ClientConfig: the fleet CA as the only root, and the
	// coordinator's certificate). Each target gets a clone whose
	// ServerName is the target's hostname.
	Config *tls.Config
	// InsecureHTTP permits http:// agent URLs (--insecure-http). Without
	// it such a URL is an error naming the target.
	InsecureHTTP bool
	// Timeout bounds a whole request (default 5 minutes).
	Timeout time.Duration

	mu      sync.Mutex
	clients map[string]*http.Client // "https hostname" or "http"
}

// ErrNoAgentTLS is returned for an https:// agent URL when no TLS
// configuration was given.
var ErrNoAgentTLS = errors.New("no fleet CA to verify the agent with (--agent-ca-file; create it with dydisnix-tls ca create)")

// TargetHostname is the name an agent's certificate must carry for target
// t: its "hostname" property when that is a non-empty string (discovered
// targets are named after it), else its name.
func TargetHostname(t *model.Target) string {
	if h, ok := t.Properties["hostname"].(string); ok && h != "" {
		return h
	}
	return t.Name
}

// Client returns the HTTP client for the agent of t at agentURL (see
// TargetAddress). An http:// URL without InsecureHTTP, or an https:// URL
// without Config, is an error naming the target: no request is ever sent
// to an agent that has not proven, in the TLS handshake, that the fleet
// CA certified it for t's hostname.
func (a *AgentTLS) Client(t *model.Target, agentURL string) (*http.Client, error) {
	return a.client(t, agentURL, 0)
}

// maxProbeClients bounds the clients kept that ProbeClient makes: one per
// announced hostname (as many as discovery keeps instances).
const maxProbeClients = 4096

// client is Client; with limit > 0, it makes no client when limit are kept
// already (nil, nil).
func (a *AgentTLS) client(t *model.Target, agentURL string, limit int) (*http.Client, error) {
	u, err := url.Parse(agentURL)
	if err != nil {
		return nil, fmt.Errorf("target %s: agent URL %q: %w", t.Name, agentURL, err)
	}
	var key, host string // host: the name the agent's certificate must carry (https)
	switch u.Scheme {
	case "https":
		if a == nil || a.Config == nil {
			return nil, fmt.Errorf("target %s: agent %s: %w", t.Name, agentURL, ErrNoAgentTLS)
		}
		host = TargetHostname(t)
		key = "https " + host
	case "http":
		if a == nil || !a.InsecureHTTP {
			return nil, fmt.Errorf("target %s: agent URL %s is plain HTTP: refused (serve the agent over TLS with certificates of dydisnix-tls, or give --insecure-http to both the agent and the coordinator)", t.Name, agentURL)
		}
		key = "http"
	default:
		return nil, fmt.Errorf("target %s: agent URL %q: expected http:// or https://", t.Name, agentURL)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[key]; ok || (limit > 0 && len(a.clients) >= limit) {
		return c, nil
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	var cfg *tls.Config // plain HTTP
	if u.Scheme == "https" {
		cfg = fleettls.ForTarget(a.Config, host)
	}
	c := agentHTTPClient(cfg, timeout)
	if a.clients == nil {
		a.clients = map[string]*http.Client{}
	}
	a.clients[key] = c
	return c, nil
}

// ProbeClient returns the client of the agent of t at endpoint (Client),
// for discovery's liveness probes (discovery.BrowserConfig.ProbeClient): a
// probe then goes out on the connection the coordinator keeps to that
// agent, where the fleet client kept a second one to every agent. It makes
// one only while fewer than maxProbeClients are kept (announcements cannot
// grow them without bound), and returns nil (probe with the fleet client)
// where it makes none or Client refuses.
func (a *AgentTLS) ProbeClient(t *model.Target, endpoint string) *http.Client {
	if t == nil {
		return nil
	}
	c, err := a.client(t, endpoint, maxProbeClients)
	if err != nil {
		return nil
	}
	return c
}

// agentIdleConnTimeout closes the coordinator's idle connections to agents
// before the agents do (their --idle-timeout defaults to a minute), so a
// request rarely goes out on a connection the agent is closing.
const agentIdleConnTimeout = 30 * time.Second

// FleetClient returns an HTTP client for the endpoints of any agent of the
// fleet, for discovery's liveness probes (where ProbeClient gives none)
// and fetches of compact announcements (GET /v1/target, no credential):
// it presents the coordinator's certificate and accepts a server
// certificate the fleet CA signed, whatever name it carries; which target
// an agent is, is checked by Client before a credential goes to it. It
// returns nil (the default client) without Config.
func (a *AgentTLS) FleetClient(timeout time.Duration) *http.Client {
	if a == nil || a.Config == nil {
		return nil
	}
	roots := a.Config.RootCAs
	cfg := a.Config.Clone()
	cfg.InsecureSkipVerify = true // the chain is verified below, without a name
	// Sessions checked without a name stay apart from the agent clients'.
	cfg.ClientSessionCache = fleettls.NewSessionCache()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the agent presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	return agentHTTPClient(cfg, timeout)
}

// agentHTTPClient is an HTTP client for agents with the TLS configuration
// cfg (nil: plain HTTP).
func agentHTTPClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy, tr.TLSClientConfig = nil, cfg
	// Kept-alive connections for every agent, however many (the default
	// pool of 100 idle connections in all made every probe of a larger
	// fleet a new TLS handshake), and up to 16 per agent, where steps,
	// lease renewals, snapshots and health polls run side by side (the
	// default keeps 2); closed before the agent closes them.
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 16
	tr.IdleConnTimeout = agentIdleConnTimeout
	return &http.Client{Timeout: timeout, Transport: tr,
		// An agent never redirects: following one would send the request
		// to an endpoint that has not proven anything.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
