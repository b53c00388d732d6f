package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
)

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestAgentTLS(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dydisnix-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cert, key := selfSigned(t, dir)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("secret"), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--listen", addr, "--state-dir", filepath.Join(dir, "state"), "--token-file", tok,
		"--tls-cert", cert, "--tls-key", key, "--drain-timeout", "1s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	hc, err := deployer.HTTPClientWithCA(cert)
	if err != nil {
		t.Fatal(err)
	}
	c := agentapi.NewClient("https://"+addr, "secret", hc)
	var h *agentapi.Health
	for i := 0; i < 200; i++ {
		if h, err = c.Health(context.Background()); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil || h.Status != "ok" {
		t.Fatalf("health over TLS: %+v %v", h, err)
	}
	if _, err := agentapi.NewClient("https://"+addr, "wrong", hc).Health(context.Background()); !agentapi.IsStatus(err, 401) {
		t.Errorf("wrong token over TLS: %v", err)
	}
	if _, err := agentapi.NewClient("https://"+addr, "secret", nil).Health(context.Background()); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}
