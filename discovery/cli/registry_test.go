package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/internal/cli"
)

func TestRegistryFlags(t *testing.T) {
	tests := []struct {
		args      []string
		enabled   bool
		endpoints string
		ttl       time.Duration
		wantErr   string
	}{
		{args: nil},
		{args: []string{"--registry", "etcd://a:2379,b"}, enabled: true, endpoints: "http://a:2379,http://b:2379", ttl: 3 * time.Second},
		{args: []string{"--registry", "etcd://a", "--registry-ttl", "5", "--registry-prefix", "/dydisnix/site-b"}, enabled: true, endpoints: "http://a:2379", ttl: 5 * time.Second},
		{args: []string{"--registry", "etcd://a", "--registry-ca", "ca.pem"}, enabled: true, endpoints: "https://a:2379", ttl: 3 * time.Second},
		{args: []string{"--registry-ca", "ca.pem"}, wantErr: "need --registry"},
		{args: []string{"--registry", "a:2379"}, wantErr: "--registry: "},
		{args: []string{"--registry", "etcd://a", "--registry-prefix", "x"}, wantErr: "must start with /"},
		{args: []string{"--registry", "etcd://a", "--registry-key", "k.pem"}, wantErr: "go together"},
	}
	for _, tt := range tests {
		var r Registry
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		r.AddFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		c, err := r.Config()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, cli.ErrUsage) {
				t.Errorf("%v: error %v, want a usage error containing %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || c.Enabled() != tt.enabled || strings.Join(c.Endpoints, ",") != tt.endpoints || c.TTL != tt.ttl {
			t.Errorf("%v: %+v, %v", tt.args, c, err)
		}
	}
}
