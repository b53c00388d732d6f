// Command dydisnix-tls creates a fleet's certificates, in the manner of
// `nomad tls`: a private CA, one certificate per agent naming the target's
// hostname, and coordinator certificates.
//
//	dydisnix-tls ca create --dir /etc/dydisnix/tls
//	dydisnix-tls cert create --dir /etc/dydisnix/tls --name machine1
//	dydisnix-tls cert create --dir /etc/dydisnix/tls --name coordinator --coordinator
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/internal/fleettls"
)

const doc = `Creates the fleet's TLS files in --dir:

  ca create      DIR/ca.pem and DIR/ca-key.pem: the fleet's CA (keep the
                 key off the targets)
  cert create    DIR/NAME.pem and DIR/NAME-key.pem, signed by DIR's CA:
                 an agent's certificate names the target's hostname NAME
                 (what coordinators check); with --coordinator, a client
                 certificate agents accept from a coordinator

An agent serves with --tls-cert NAME.pem --tls-key NAME-key.pem
--client-ca ca.pem; a coordinator connects with --agent-ca-file ca.pem
--tls-cert coordinator.pem --tls-key coordinator-key.pem.
Keys are ECDSA P-256, written with mode 0600; existing files are kept
unless --force.`

type options struct {
	dir, name, commonName string
	coordinator, force    bool
	hosts                 []string
	days                  int
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-tls", "ca create [--dir DIR]\ncert create --name NAME [--coordinator] [--hosts H,...] [--dir DIR]", doc)
	c.MaxArgs = 2
	o := &options{}
	f := c.Flags
	f.StringVar(&o.dir, "dir", ".", "`DIR` holding the CA and the certificates")
	f.StringVar(&o.name, "name", "", "cert: `NAME` of the certificate: the target's hostname, or the coordinator's name")
	f.BoolVar(&o.coordinator, "coordinator", false, "cert: a coordinator's client certificate")
	f.StringSliceVar(&o.hosts, "hosts", nil, "`HOSTS` cert: further DNS names and IP addresses, comma-separated (e.g. localhost,127.0.0.1)")
	f.IntVar(&o.days, "days", 0, "`N` days of validity (default: CA 1825, certificate 365)")
	f.StringVar(&o.commonName, "common-name", "", "ca: the CA's `NAME` (default \"dydisnix fleet CA\")")
	f.BoolVar(&o.force, "force", false, "replace existing files")
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	return c.Exit(o.do(f.Args(), stdout), stderr)
}

func (o *options) do(args []string, stdout io.Writer) error {
	if o.days < 0 {
		return cli.Usagef("--days must be positive")
	}
	opts := fleettls.Options{Force: o.force, Validity: time.Duration(o.days) * 24 * time.Hour}
	switch strings.Join(args, " ") {
	case "ca create":
		if o.name != "" || o.coordinator || len(o.hosts) > 0 {
			return cli.Usagef("--name, --coordinator and --hosts are for cert create")
		}
		if err := fleettls.CreateCA(o.dir, o.commonName, opts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(o.dir, fleettls.CAFile), filepath.Join(o.dir, fleettls.CAKeyFile))
		return nil
	case "cert create":
		if o.name == "" {
			return cli.Usagef("cert create needs --name (the target's hostname, or the coordinator's name)")
		}
		if o.commonName != "" {
			return cli.Usagef("--common-name is for ca create")
		}
		req := fleettls.CertRequest{Name: o.name, Coordinator: o.coordinator, Hosts: o.hosts}
		if err := fleettls.CreateCert(o.dir, req, opts); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(o.dir, fleettls.CertFile(o.name)), filepath.Join(o.dir, fleettls.KeyFile(o.name)))
		return nil
	default:
		return cli.Usagef("want 'ca create' or 'cert create', got %q", strings.Join(args, " "))
	}
}
