package discovery_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/etcdtest"
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
