package discovery_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/etcdtest"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

func TestParseRegistryURL(t *testing.T) {
	tests := []struct {
		in      string
		tls     bool
		want    []string
		wantErr string
	}{
		{in: "etcd://10.0.0.1:2379,10.0.0.2:2380", want: []string{"http://10.0.0.1:2379", "http://10.0.0.2:2380"}},
		{in: "etcd://etcd1", want: []string{"http://etcd1:2379"}},
		{in: "etcd://etcd1,etcd2:3000", tls: true, want: []string{"https://etcd1:2379", "https://etcd2:3000"}},
		{in: "etcds://[fd00::1]:2379,[fd00::2]", want: []string{"https://[fd00::1]:2379", "https://[fd00::2]:2379"}},
		{in: "http://a:1,https://b:2", want: []string{"http://a:1", "https://b:2"}},
		{in: "a:2379", wantErr: "expected etcd://"},
		{in: "zk://a:2379", wantErr: "unknown scheme"},
		{in: "etcd://a:2379,", wantErr: "empty host"},
		{in: "etcd://a:99999", wantErr: "not 1-65535"},
		{in: "etcd://user@a:2379", wantErr: "no user, path or query"},
		{in: "etcd://a:2379/x", wantErr: "no user, path or query"},
		{in: "http://a:1,ftp://b:2", wantErr: "expected http://HOST:PORT"},
	}
	for _, tt := range tests {
		got, err := discovery.ParseRegistryURL(tt.in, tt.tls)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRegistryURL(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRegistryURL(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRegistryConfigCheck(t *testing.T) {
	tests := []struct {
		cfg        discovery.RegistryConfig
		wantPrefix string
		wantTTL    int64
		wantErr    string
	}{
		{cfg: discovery.RegistryConfig{}, wantPrefix: "/dydisnix/default", wantTTL: 3},
		{cfg: discovery.RegistryConfig{Prefix: "/dydisnix/site-b/", TTL: 1500 * time.Millisecond}, wantPrefix: "/dydisnix/site-b", wantTTL: 2},
		{cfg: discovery.RegistryConfig{Prefix: "dydisnix"}, wantErr: "must start with /"},
		{cfg: discovery.RegistryConfig{Prefix: "/"}, wantErr: "the root"},
		{cfg: discovery.RegistryConfig{TTL: 500 * time.Millisecond}, wantErr: "at least 1s"},
		{cfg: discovery.RegistryConfig{CertFile: "c.pem"}, wantErr: "go together"},
	}
	for _, tt := range tests {
		c := tt.cfg
		err := c.Check()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Check(%+v) error = %v, want one containing %q", tt.cfg, err, tt.wantErr)
			}
			continue
		}
		if err != nil || c.Prefix != tt.wantPrefix || c.TTLSeconds() != tt.wantTTL {
			t.Errorf("Check(%+v) = %q ttl %d, %v; want %q ttl %d", tt.cfg, c.Prefix, c.TTLSeconds(), err, tt.wantPrefix, tt.wantTTL)
		}
		if k := c.Key("targets", "web1"); k != tt.wantPrefix+"/targets/web1" {
			t.Errorf("Key = %q", k)
		}
	}
}

// TestRegistryClient reaches a real etcd member through the configuration.
func TestRegistryClient(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cfg := discovery.RegistryConfig{Endpoints: c.Endpoints()}
	cli, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, cfg.Key("probe"), "1"); err != nil {
		t.Fatalf("put through the configured client: %v", err)
	}
	if _, err := (discovery.RegistryConfig{}).Client(); err == nil {
		t.Fatal("a client without endpoints was made")
	}
}

// TestRegistryClientTLS reaches a real etcd member that serves TLS and
// requires client certificates: with --registry-ca and a client
// certificate the client works; without the client certificate etcd
// refuses it.
func TestRegistryClientTLS(t *testing.T) {
	testenv.NeedCommand(t, "etcd")
	fleet := testenv.NewFleet(t, "etcd-server")
	dir := t.TempDir()
	var port [2]int
	for i := range port {
		port[i] = testenv.Port(t)
	}
	client, peer := fmt.Sprintf("https://127.0.0.1:%d", port[0]), fmt.Sprintf("http://127.0.0.1:%d", port[1])
	args := append(etcdtest.MemberArgs("m0", filepath.Join(dir, "data"), client, peer, "m0="+peer),
		"--client-cert-auth", "--trusted-ca-file", fleet.CA(),
		"--cert-file", filepath.Join(fleet.Dir, "etcd-server.pem"), "--key-file", filepath.Join(fleet.Dir, "etcd-server-key.pem"))
	cmd := exec.Command("etcd", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	url := fmt.Sprintf("etcd://127.0.0.1:%d", port[0])
	cfg := discovery.RegistryConfig{CAFile: fleet.CA(),
		CertFile: filepath.Join(fleet.Dir, "coordinator.pem"), KeyFile: filepath.Join(fleet.Dir, "coordinator-key.pem")}
	var err error
	if cfg.Endpoints, err = discovery.ParseRegistryURL(url, true); err != nil {
		t.Fatal(err)
	}
	cli, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for { // until the member serves (its first election)
		actx, acancel := context.WithTimeout(ctx, time.Second)
		_, err = cli.Put(actx, cfg.Key("probe"), "1")
		acancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("put over TLS with a client certificate: %v", err)
	}

	anon := cfg
	anon.CertFile, anon.KeyFile = "", ""
	acli, err := anon.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer acli.Close()
	actx, acancel := context.WithTimeout(ctx, 3*time.Second)
	defer acancel()
	if _, err := acli.Get(actx, cfg.Key("probe")); err == nil {
		t.Fatal("etcd answered a client without a certificate")
	}
}
