package testenv

import (
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/internal/fleettls"
)

// Fleet is a fleet CA made for a test, with a coordinator certificate and
// agent certificates (see NewFleet).
type Fleet struct {
	// Dir holds the files: ca.pem, coordinator.pem, NAME.pem, ...
	Dir string
}

// NewFleet creates, in a temporary directory, a fleet CA, a coordinator
// certificate and one agent certificate per hostname (also valid for
// localhost and 127.0.0.1), as dydisnix-tls does.
func NewFleet(t testing.TB, hostnames ...string) Fleet {
	t.Helper()
	f := Fleet{Dir: t.TempDir()}
	if err := fleettls.CreateCA(f.Dir, "", fleettls.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := fleettls.CreateCert(f.Dir, fleettls.CertRequest{Name: "coordinator", Coordinator: true}, fleettls.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, h := range hostnames {
		if err := fleettls.CreateCert(f.Dir, fleettls.CertRequest{Name: h, Hosts: []string{"localhost", "127.0.0.1"}}, fleettls.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// CA is the fleet CA's certificate file.
func (f Fleet) CA() string { return filepath.Join(f.Dir, fleettls.CAFile) }

// AgentArgs are the agent's TLS flags for the certificate of hostname.
func (f Fleet) AgentArgs(hostname string) []string {
	return []string{"--tls-cert", filepath.Join(f.Dir, fleettls.CertFile(hostname)),
		"--tls-key", filepath.Join(f.Dir, fleettls.KeyFile(hostname)), "--client-ca", f.CA()}
}

// CoordinatorArgs are a coordinator's flags to reach the fleet's agents.
func (f Fleet) CoordinatorArgs() []string {
	return []string{"--agent-ca-file", f.CA(), "--tls-cert", filepath.Join(f.Dir, fleettls.CertFile("coordinator")),
		"--tls-key", filepath.Join(f.Dir, fleettls.KeyFile("coordinator"))}
}
