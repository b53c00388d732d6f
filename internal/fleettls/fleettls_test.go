package fleettls

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fleet creates a CA, an agent certificate for machine1 (with localhost
// and 127.0.0.1) and a coordinator certificate in a temporary directory.
func fleet(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if err := CreateCA(dir, "", Options{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []CertRequest{
		{Name: "machine1", Hosts: []string{"localhost", "127.0.0.1"}},
		{Name: "coord", Coordinator: true},
	} {
		if err := CreateCert(dir, r, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// handshake serves one TLS connection with server and dials it with
// client; it returns the client's and the server's handshake errors.
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srv <- err
			return
		}
		defer c.Close()
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		srv <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		// TLS 1.3: a rejected client certificate shows on the first read.
		_, err = io.ReadAll(c)
		c.Close()
	}
	return err, <-srv
}

func TestHandshakes(t *testing.T) {
	t.Parallel()
	dir := fleet(t)
	other := filepath.Join(t.TempDir(), "other")
	if err := CreateCA(other, "", Options{}); err != nil {
		t.Fatal(err)
	}
	if err := CreateCert(other, CertRequest{Name: "coord", Coordinator: true}, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := CreateCert(other, CertRequest{Name: "machine1"}, Options{}); err != nil {
		t.Fatal(err)
	}
	p := func(d, n string) string { return filepath.Join(d, n) }
	server := func(d string) *tls.Config {
		c, err := ServerConfig(p(d, "machine1.pem"), p(d, "machine1-key.pem"), p(dir, CAFile))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	client := func(d, name, host string) *tls.Config {
		cert, key := "", ""
		if name != "" {
			cert, key = p(d, CertFile(name)), p(d, KeyFile(name))
		}
		c, err := ClientConfig(p(dir, CAFile), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return ForTarget(c, host)
	}
	for _, tc := range []struct {
		name            string
		server, client  *tls.Config
		clientErr, sErr string
	}{
		{name: "coordinator to the named agent", server: server(dir), client: client(dir, "coord", "machine1")},
		{name: "agent reached as localhost", server: server(dir), client: client(dir, "coord", "localhost")},
		{name: "agent not named as the target", server: server(dir), client: client(dir, "coord", "machine2"),
			clientErr: "machine2"},
		{name: "agent of another CA", server: server(other), client: client(dir, "coord", "machine1"),
			clientErr: "unknown authority"},
		{name: "no client certificate", server: server(dir), client: client(dir, "", "machine1"),
			sErr: "certificate"},
		{name: "an agent's certificate as client", server: server(dir), client: client(dir, "machine1", "machine1"),
			sErr: "certificate"},
		{name: "a coordinator of another CA", server: server(dir), client: client(other, "coord", "machine1"),
			sErr: "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cerr, serr := handshake(t, tc.server, tc.client)
			switch {
			case tc.clientErr == "" && tc.sErr == "":
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v; want a connection", cerr, serr)
				}
			case tc.clientErr != "":
				if cerr == nil || !strings.Contains(cerr.Error(), tc.clientErr) {
					t.Fatalf("client error %v, want one with %q", cerr, tc.clientErr)
				}
			default:
				if serr == nil || !strings.Contains(serr.Error(), tc.sErr) || cerr == nil {
					t.Fatalf("server error %v (client %v), want the server to refuse with %q", serr, cerr, tc.sErr)
				}
			}
		})
	}
}

func TestFiles(t *testing.T) {
	t.Parallel()
	dir := fleet(t)
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{CAFile, 0o644}, {CAKeyFile, 0o600}, {"machine1.pem", 0o644}, {"machine1-key.pem", 0o600}, {"coord-key.pem", 0o600}} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Errorf("%s: %v %v, want mode %v", f.name, fi, err, f.mode)
		}
	}
	if err := CreateCA(dir, "", Options{}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second CA over the first: %v, want a refusal", err)
	}
	if err := CreateCert(dir, CertRequest{Name: "machine1"}, Options{}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second certificate over the first: %v", err)
	}
	if err := CreateCert(dir, CertRequest{Name: "machine1"}, Options{Force: true}); err != nil {
		t.Errorf("--force: %v", err)
	}
	for _, bad := range []CertRequest{{Name: ""}, {Name: "../x"}, {Name: "m", Hosts: []string{"a b"}}} {
		if err := CreateCert(dir, bad, Options{}); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	if err := CreateCert(t.TempDir(), CertRequest{Name: "m"}, Options{}); err == nil || !strings.Contains(err.Error(), "ca create") {
		t.Errorf("no CA: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// A second connection to the same agent resumes the session (no new
// certificate signatures), through ForTarget's copies of one client
// configuration; another target's name is not served from it.
func TestClientResumesSessions(t *testing.T) {
	t.Parallel()
	dir := fleet(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	server, err := ServerConfig(p("machine1.pem"), p("machine1-key.pem"), p(CAFile))
	if err != nil {
		t.Fatal(err)
	}
	base, err := ClientConfig(p(CAFile), p(CertFile("coord")), p(KeyFile("coord")))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if c.(*tls.Conn).Handshake() == nil {
				_, _ = c.Write([]byte("ok"))
			}
			c.Close()
		}
	}()
	for i, tc := range []struct {
		host   string
		resume bool
		err    string
	}{{"machine1", false, ""}, {"machine1", true, ""}, {"machine2", false, "machine2"}} {
		c, err := tls.Dial("tcp", ln.Addr().String(), ForTarget(base, tc.host))
		if err == nil {
			_, err = io.ReadAll(c) // reads the session ticket too
			c.Close()
		}
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("connection %d to %s: %v, want an error naming %q", i, tc.host, err, tc.err)
			}
		case err != nil:
			t.Fatalf("connection %d to %s: %v", i, tc.host, err)
		case c.ConnectionState().DidResume != tc.resume:
			t.Fatalf("connection %d to %s resumed %v, want %v", i, tc.host, c.ConnectionState().DidResume, tc.resume)
		}
	}
}
