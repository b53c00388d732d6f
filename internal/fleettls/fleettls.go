// Package fleettls makes and uses a fleet's certificates: a private CA,
// agent certificates that name a target's hostname, and coordinator
// certificates for the clients the agents accept (dydisnix-tls writes them,
// in the manner of `nomad tls`). It also builds the tls.Configs both sides
// use: an agent serves HTTPS and accepts only clients with a coordinator
// certificate of the CA; a coordinator connects only to an agent whose
// certificate the CA signed and that names the target's hostname.
//
// Keys are ECDSA P-256; private keys are written with mode 0600 through a
// temporary file and a rename, and an existing file is never overwritten
// unless asked to.
package fleettls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CoordinatorURI is the URI SAN that marks a coordinator's certificate
// (besides the client-authentication key usage): agents accept no other
// client certificate, so an agent's own certificate cannot drive another
// agent.
const CoordinatorURI = "urn:dydisnix:role:coordinator"

// The file names in a certificate directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// CertFile and KeyFile are the names of NAME's certificate and key.
func CertFile(name string) string { return name + ".pem" }

// KeyFile is the name of NAME's private key file.
func KeyFile(name string) string { return name + "-key.pem" }

// Options say how long a certificate is valid, whether existing files may
// be replaced, and the clock (nil: time.Now).
type Options struct {
	Validity time.Duration
	Force    bool
	Now      func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// CreateCA writes a new CA certificate and key into dir (created 0700 if
// missing): dir/ca.pem and dir/ca-key.pem. Validity defaults to 5 years.
func CreateCA(dir, commonName string, o Options) error {
	if o.Validity == 0 {
		o.Validity = 5 * 365 * 24 * time.Hour
	}
	if commonName == "" {
		commonName = "dydisnix fleet CA"
	}
	if err := checkFree(dir, o.Force, CAFile, CAKeyFile); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"dydisnix"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(o.Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return err
	}
	return writePair(dir, CAFile, CAKeyFile, der, key)
}

// CertRequest describes a certificate to issue: an agent's (Name is the
// target's hostname, the DNS name a coordinator checks) or a coordinator's.
// Hosts adds DNS names and IP addresses (e.g. "localhost", "127.0.0.1").
type CertRequest struct {
	Name        string
	Coordinator bool
	Hosts       []string
}

// CreateCert issues NAME's certificate with dir's CA and writes
// dir/NAME.pem and dir/NAME-key.pem. Validity defaults to one year.
func CreateCert(dir string, req CertRequest, o Options) error {
	if err := checkName(req.Name); err != nil {
		return err
	}
	if o.Validity == 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	if err := checkFree(dir, o.Force, CertFile(req.Name), KeyFile(req.Name)); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: req.Name, Organization: []string{"dydisnix"}},
		NotBefore: now.Add(-time.Minute),
		NotAfter:  now.Add(o.Validity),
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	if req.Coordinator {
		u, _ := url.Parse(CoordinatorURI)
		tmpl.URIs = []*url.URL{u}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{req.Name}
	}
	for _, h := range req.Hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		default:
			if err := checkName(h); err != nil {
				return fmt.Errorf("host %q: %w", h, err)
			}
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := sign(tmpl, ca, key, caKey)
	if err != nil {
		return err
	}
	return writePair(dir, CertFile(req.Name), KeyFile(req.Name), der, key)
}

// checkName accepts a hostname: letters, digits, '-', '.', '_'.
func checkName(n string) error {
	if n == "" {
		return errors.New("a name is required (the target's hostname, or the coordinator's name)")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("name %q: want a hostname (letters, digits, '-', '.', '_')", n)
		}
	}
	return nil
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA (create it with: dydisnix-tls ca create --dir %s): %w", dir, err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA's key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAFile), err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAFile), err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, nil, fmt.Errorf("%s: not a CA certificate with an ECDSA key", filepath.Join(dir, CAFile))
	}
	return cert, key, nil
}

// checkFree fails when one of the files exists in dir, unless force.
func checkFree(dir string, force bool, names ...string) error {
	if force {
		return nil
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists (--force replaces it)", p)
		}
	}
	return nil
}

// writePair writes the certificate (0644) and the key (0600), each through
// a temporary file, fsync and rename.
func writePair(dir, certName, keyName string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
