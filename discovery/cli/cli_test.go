package cli

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func run(t *testing.T, main func(string, []string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := main("cmd", args, &out, &errb)
	return code, out.String(), errb.String()
}

func publish(name string, args []string, out, errb *bytes.Buffer) int {
	return Publish(name, args, out, errb)
}

func geninfra(name string, args []string, out, errb *bytes.Buffer) int {
	return Geninfra(name, args, out, errb)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n got:\n%s\nwant:\n%s", name, file, got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("DYDISNIX_MDNS_INTERFACES", "")
	for _, c := range []struct {
		name string
		main func(string, []string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		code int
		msg  string
	}{
		{"geninfra bad format", geninfra, []string{"--interface", "lo", "-f", "xml"}, 2, `invalid argument "xml" for "-f, --format" flag: expected json or nix`},
		{"geninfra bad timeout", geninfra, []string{"--interface", "lo", "-t", "soon"}, 2, "--timeout"},
		{"geninfra zero timeout", geninfra, []string{"--interface", "lo", "-t", "0"}, 2, "--timeout must be positive"},
		{"geninfra unknown flag", geninfra, []string{"--bogus"}, 2, "unknown flag"},
		{"geninfra help", geninfra, []string{"-h"}, 0, ""},
		{"publish without interface", publish, []string{"--properties", "testdata/flat.yaml"}, 2, "no interface given"},
		{"publish two sources", publish, []string{"--properties", "x.json", "--dysnomia"}, 2, "only one of"},
		{"publish missing file", publish, []string{"--print", "--properties", "testdata/missing.json"}, 1, "missing.json"},
		{"publish bad extension", publish, []string{"--print", "--properties", "testdata/machine.txt"}, 1, "unknown model file extension"},
		{"publish help", publish, []string{"--help"}, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, c.main, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, errs)
			}
			if c.msg != "" && !strings.Contains(errs, c.msg) {
				t.Fatalf("stderr %q lacks %q", errs, c.msg)
			}
			if c.code == 0 && !strings.Contains(out, "Usage:") {
				t.Fatalf("help output: %q", out)
			}
		})
	}
}

// --print shows the TXT strings without touching the network.
func TestPublishPrint(t *testing.T) {
	fake, _ := filepath.Abs("testdata/fake-dysnomia-containers")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"nix-file", []string{"--properties", "testdata/machine.nix"}},
		{"fake-dysnomia", []string{"--properties-command", fake + " --generate-expr"}},
		{"flat-yaml-endpoint", []string{"--properties", "testdata/flat.yaml", "--endpoint", "http://10.0.0.2:9001/"}},
		{"compact", []string{"--properties", "testdata/flat.yaml", "--endpoint", "http://10.0.0.2:9001", "--compact"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, publish, append([]string{"--print"}, c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden(t, "print-"+c.name, out)
		})
	}
}

func TestPublishPrintHostnameFallback(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p.json")
	os.WriteFile(f, []byte(`{"properties": {"mem": "1"}}`), 0o644)
	code, out, errs := run(t, publish, "--print", "--properties", f)
	if code != 0 {
		t.Fatal(errs)
	}
	host, _ := os.Hostname()
	if !strings.Contains(out, `properties."hostname"="`+host+`"`) {
		t.Fatalf("no hostname %q in:\n%s", host, out)
	}
}

func TestPublishPrintSigned(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	code, out, errs := run(t, publish, "--print", "--properties", "testdata/flat.yaml", "--sign-key", keyFile)
	if code != 0 {
		t.Fatal(errs)
	}
	if !strings.Contains(out, `sig="ed25519:`) {
		t.Fatalf("no signature in:\n%s", out)
	}
	pubDer, _ := x509.MarshalPKIXPublicKey(priv.Public())
	pubFile := filepath.Join(dir, "pub.pem")
	os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDer}), 0o644)
	if code, _, errs := run(t, publish, "--print", "--properties", "testdata/flat.yaml", "--sign-key", pubFile); code != 1 || !strings.Contains(errs, "cannot sign") {
		t.Fatalf("public key accepted for signing: %d %s", code, errs)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny"), 0o600)
	if code, _, errs := run(t, publish, "--print", "--properties", "testdata/flat.yaml", "--sign-key", short); code != 1 || !strings.Contains(errs, "at least 16 bytes") {
		t.Fatalf("short secret accepted: %d %s", code, errs)
	}
}

func TestGeninfraAvahiDefaultsToNix(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Geninfra("dydisnix-geninfra-avahi", []string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `(default "nix")`) {
		t.Fatalf("help: %d %s", code, out.String())
	}
	// Without an interface it browses every usable one: see cmd's
	// TestGeninfraAvahiWithoutArguments, which runs it in namespaces.
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, scheme string
		addr         *net.TCPAddr
		ifaces       []string
		want, err    string
	}{
		{"specific address", "https", &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 7420}, nil, "https://10.0.0.2:7420", ""},
		{"IPv6 address", "http", &net.TCPAddr{IP: net.ParseIP("fd00::2"), Port: 80}, nil, "http://[fd00::2]:80", ""},
		{"unspecified: the interface's address", "http", &net.TCPAddr{IP: net.IPv4zero, Port: 9}, []string{"nosuch0", "lo"}, "http://127.0.0.1:9", ""},
		{"no usable interface", "http", &net.TCPAddr{Port: 9}, []string{"nosuch0"}, "", "cannot tell which address of nosuch0 to announce: give --endpoint"},
	} {
		got, err := Endpoint(c.scheme, c.addr, c.ifaces)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("%s: %q, %v; want %q, %q", c.name, got, err, c.want, c.err)
		}
	}
}
