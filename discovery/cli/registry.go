package cli

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/cli"
)

// Registry holds the --registry flags every command that reaches the etcd
// registry shares (agent, publisher, generators, coordinators).
type Registry struct {
	// URL is --registry: etcd://HOST:2379[,HOST:2379…] ("" means none).
	URL                       string
	CAFile, CertFile, KeyFile string
	Prefix                    string
	TTL                       time.Duration
}

// AddFlags defines --registry, --registry-ca, --registry-cert,
// --registry-key, --registry-prefix and --registry-ttl on fs.
func (r *Registry) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&r.URL, "registry", "", "`URL` etcd registry: etcd://HOST:2379[,HOST:2379…] (etcds:// for TLS)")
	fs.StringVar(&r.CAFile, "registry-ca", "", "`FILE` CA of the etcd servers' certificates (makes etcd:// use TLS)")
	fs.StringVar(&r.CertFile, "registry-cert", "", "`FILE` client certificate presented to etcd")
	fs.StringVar(&r.KeyFile, "registry-key", "", "`FILE` key of --registry-cert")
	fs.StringVar(&r.Prefix, "registry-prefix", discovery.DefaultRegistryPrefix, "`PREFIX` the fleet's key prefix in etcd")
	cli.SecondsVarP(fs, &r.TTL, "registry-ttl", "", discovery.DefaultRegistryTTL, "`DUR` lease TTL of registrations (whole seconds, at least 1)")
}

// Enabled reports whether --registry was given.
func (r *Registry) Enabled() bool { return r.URL != "" }

// Config returns the checked configuration (a usage error names the flag
// at fault); the zero RegistryConfig when --registry was not given.
func (r *Registry) Config() (discovery.RegistryConfig, error) {
	if !r.Enabled() {
		if r.CAFile != "" || r.CertFile != "" || r.KeyFile != "" {
			return discovery.RegistryConfig{}, cli.Usagef("--registry-ca, --registry-cert and --registry-key need --registry")
		}
		return discovery.RegistryConfig{}, nil
	}
	eps, err := discovery.ParseRegistryURL(r.URL, r.CAFile != "" || r.CertFile != "")
	if err != nil {
		return discovery.RegistryConfig{}, cli.Usagef("--registry: %v", err)
	}
	c := discovery.RegistryConfig{Endpoints: eps, CAFile: r.CAFile, CertFile: r.CertFile, KeyFile: r.KeyFile,
		Prefix: r.Prefix, TTL: r.TTL}
	if err := c.Check(); err != nil {
		return discovery.RegistryConfig{}, cli.Usagef("%v", err)
	}
	return c, nil
}

// Into sets the registry of a coordinator's infrastructure choice.
func (r *Registry) Into(c *discovery.Choice) error {
	reg, err := r.Config()
	c.Registry = reg
	return err
}
