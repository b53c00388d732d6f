package fleettls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// pool reads PEM certificates to trust from file.
func pool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return p, nil
}

// ServerConfig is an agent's: it serves certFile/keyFile and accepts only
// clients whose certificate clientCAFile's CA signed for a coordinator
// (client authentication and CoordinatorURI).
func ServerConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cas, err := pool(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    cas,
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !IsCoordinator(cs.PeerCertificates[0]) {
				return errors.New("the client's certificate is not a coordinator's (dydisnix-tls cert create --coordinator)")
			}
			return nil
		},
	}, nil
}

// IsCoordinator tells whether cert carries the coordinator's mark.
func IsCoordinator(cert *x509.Certificate) bool {
	for _, u := range cert.URIs {
		if u.String() == CoordinatorURI {
			return true
		}
	}
	return false
}

// ClientConfig is a coordinator's: it trusts only caFile's CA and presents
// certFile/keyFile (both empty: no client certificate). The result has no
// ServerName: use ForTarget for each agent, so the agent's certificate
// must name the target's hostname whatever address it is reached at.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cas, err := pool(caFile)
	if err != nil {
		return nil, fmt.Errorf("--agent-ca-file: %w", err)
	}
	c := &tls.Config{RootCAs: cas, MinVersion: tls.VersionTLS12,
		// Resumed sessions (shared by ForTarget's copies): a connection
		// to an agent made again (after an idle timeout, or a probe that
		// timed out) skips the certificate checks' signatures. The
		// agent's VerifyConnection still runs, and the name is checked
		// again.
		ClientSessionCache: NewSessionCache()}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// NewSessionCache returns a TLS session cache for a coordinator's
// connections to its agents, large enough for a fleet of thousands.
func NewSessionCache() tls.ClientSessionCache { return tls.NewLRUClientSessionCache(4096) }

// ForTarget returns base for the agent of target hostname: the handshake
// fails unless the agent's certificate names hostname.
func ForTarget(base *tls.Config, hostname string) *tls.Config {
	c := base.Clone()
	c.ServerName = hostname
	return c
}
