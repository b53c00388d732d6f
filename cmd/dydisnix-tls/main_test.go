package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/fleettls"
)

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"cert", "create", "--dir", dir, "--name", "machine1"}, 1, "ca create --dir"},
		{[]string{"ca", "create", "--dir", dir}, 0, filepath.Join(dir, "ca-key.pem")},
		{[]string{"ca", "create", "--dir", dir}, 1, "--force"},
		{[]string{"cert", "create", "--dir", dir, "--name", "machine1", "--hosts", "localhost,127.0.0.1"}, 0, filepath.Join(dir, "machine1-key.pem")},
		{[]string{"cert", "create", "--dir", dir, "--name", "coordinator", "--coordinator", "--days", "30"}, 0, filepath.Join(dir, "coordinator.pem")},
		{[]string{"cert", "create", "--dir", dir}, 2, "needs --name"},
		{[]string{"ca", "create", "--dir", dir, "--name", "x"}, 2, "cert create"},
		{[]string{"cert", "delete", "--dir", dir}, 2, "want 'ca create' or 'cert create'"},
		{[]string{"cert", "create", "--dir", dir, "--name", "a/b"}, 1, "want a hostname"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.out) {
			t.Errorf("%v: exit %d, %q %q; want %d with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
	agent := readCert(t, filepath.Join(dir, "machine1.pem"))
	if strings.Join(agent.DNSNames, ",") != "machine1,localhost" || len(agent.IPAddresses) != 1 || fleettls.IsCoordinator(agent) {
		t.Errorf("agent certificate: DNS %v IP %v", agent.DNSNames, agent.IPAddresses)
	}
	coord := readCert(t, filepath.Join(dir, "coordinator.pem"))
	if !fleettls.IsCoordinator(coord) || len(coord.DNSNames) != 0 {
		t.Errorf("coordinator certificate: URIs %v DNS %v", coord.URIs, coord.DNSNames)
	}
	if days := coord.NotAfter.Sub(coord.NotBefore).Hours() / 24; days > 31 {
		t.Errorf("--days 30: valid for %.1f days", days)
	}
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
