// Command dydisnix-agent is the embedded deployment agent that runs on every
// target: an authenticated HTTP/JSON API that activates, supervises,
// snapshots and restores services for the coordinator.
//
//	dydisnix-agent --listen ADDR --state-dir DIR --token-file F --tls-cert C --tls-key K --client-ca CA [--publish --interface IF]
package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/discovery"
	dcli "github.com/dydisnix/dydisnix/discovery/cli"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/internal/sdnotify"
)

const doc = `Runs the deployment agent of a target. It serves HTTPS with
--tls-cert/--tls-key (a certificate of the fleet CA naming the target's
hostname) and accepts only clients presenting a coordinator certificate of
--client-ca (see dydisnix-tls); --insecure-http serves plain HTTP instead.
Every request must also carry "Authorization: Bearer <token>" (the content
of --token-file, surrounding white space removed); any other request gets 401.`

const footer = `On SIGTERM or SIGINT the agent drains: it withdraws its mDNS announcement,
reports "draining" in /v1/health and /v1/drain, refuses new activations,
keeps serving until the coordinator has moved its services away (or
--drain-timeout passes; a second signal cuts the drain short), then stops
its processes and exits 0.`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	listen, stateDir, tokenFile, tlsCert, tlsKey string
	clientCA                                     string
	keep, maxEntries, maxConns                   int
	maxUpload, maxExtract                        int64
	drainTimeout, startTimeout, idleTimeout      time.Duration
	publish, insecureHTTP                        bool
	signKey                                      string
	properties, endpoint                         string
	interfaces                                   []string
	registry                                     dcli.Registry
	log                                          cli.Log
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-agent", "--listen ADDR --state-dir DIR --token-file FILE [options]", doc)
	c.Footer = footer
	c.ExitStatus = "Exit status: 0 success, 1 runtime error, 2 usage error."
	var o options
	fs := c.Flags
	fs.StringVar(&o.listen, "listen", ":7420", "`ADDR` address to listen on")
	fs.StringVar(&o.stateDir, "state-dir", "", "`DIR` the agent's state directory (required)")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the bearer token from `FILE` (required)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "`FILE` serve HTTPS with this certificate (dydisnix-tls cert create --name HOSTNAME) ...")
	fs.StringVar(&o.tlsKey, "tls-key", "", "`FILE` ... and this key")
	fs.StringVar(&o.clientCA, "client-ca", "", "`FILE` the fleet CA: only clients with a coordinator certificate of it are served")
	fs.BoolVar(&o.insecureHTTP, "insecure-http", false, "serve plain HTTP without TLS or client authentication (the bearer token is the only credential)")
	fs.IntVar(&o.keep, "keep", 2, "`N` snapshot generations kept per service")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 2*time.Minute, "`DUR` on SIGTERM, how long to wait for the coordinator to move the services away before stopping them")
	fs.DurationVar(&o.startTimeout, "start-timeout", 20*time.Second, "`DUR` how long an activation waits for a process to run and pass its health check")
	fs.Int64Var(&o.maxUpload, "max-upload", 1<<30, "`BYTES` largest artifact or snapshot upload accepted (larger: 413)")
	fs.Int64Var(&o.maxExtract, "max-extract", 1<<30, "`BYTES` most bytes a snapshot restore may write (more: 413)")
	fs.IntVar(&o.maxEntries, "max-entries", 100000, "`N` most entries a restored snapshot may hold (more: 413)")
	fs.IntVar(&o.maxConns, "max-conns", 128, "`N` connections served at once (more wait)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", time.Minute, "`DUR` an idle keep-alive connection is closed after this")
	fs.BoolVar(&o.publish, "publish", false, "announce this machine over mDNS (in-process publisher) with the agent's URL as its endpoint")
	fs.StringVar(&o.properties, "properties", "", "`FILE` the machine's properties for --publish (JSON, YAML, Nix)")
	fs.StringVar(&o.signKey, "sign-key", "", "`FILE` sign the --publish announcements (shared secret, or ed25519 PEM private key)")
	fs.StringArrayVar(&o.interfaces, "interface", nil, "`IF` interface to announce on (repeatable; required with --publish)")
	fs.StringVar(&o.endpoint, "endpoint", "", "`URL` the URL announced (default: http(s)://<address of the first --interface>:<port>)")
	o.registry.AddFlags(fs)
	o.log.AddFlags(fs)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	var uerr error
	switch {
	case o.stateDir == "":
		uerr = cli.Usagef("--state-dir is required")
	case o.tokenFile == "":
		uerr = cli.Usagef("--token-file is required")
	case o.insecureHTTP && (o.tlsCert != "" || o.tlsKey != "" || o.clientCA != ""):
		uerr = cli.Usagef("--insecure-http serves plain HTTP: it does not go with --tls-cert, --tls-key or --client-ca")
	case !o.insecureHTTP && (o.tlsCert == "" || o.tlsKey == "" || o.clientCA == ""):
		uerr = cli.Usagef("the agent serves HTTPS to coordinators of the fleet only: --tls-cert, --tls-key and --client-ca are required " +
			"(create them with dydisnix-tls: `dydisnix-tls ca create --dir D`, then `dydisnix-tls cert create --dir D --name HOSTNAME` " +
			"and give --tls-cert D/HOSTNAME.pem --tls-key D/HOSTNAME-key.pem --client-ca D/ca.pem), or --insecure-http for plain HTTP")
	case o.publish && len(o.interfaces) == 0:
		uerr = cli.Usagef("--publish needs --interface (never announced on every interface)")
	case o.signKey != "" && !o.publish && !o.registry.Enabled():
		uerr = cli.Usagef("--sign-key signs the --publish announcements and --registry registrations; give one")
	}
	if uerr != nil {
		return c.Exit(uerr, stderr)
	}
	log := o.log.Logger(stderr)
	defer log.Sync()
	if err := serve(o, log); err != nil {
		log.Error("agent failed", zap.Error(err))
		return c.Exit(err, stderr)
	}
	return 0
}

func serve(o options, log *zap.Logger) error {
	token, err := cli.ReadToken(o.tokenFile)
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if !o.insecureHTTP {
		if tlsCfg, err = fleettls.ServerConfig(o.tlsCert, o.tlsKey, o.clientCA); err != nil {
			return err
		}
	}
	ln, err := agent.Listen(o.listen, tlsCfg)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{StateDir: o.stateDir, Token: []byte(token), Keep: o.keep, StartTimeout: o.startTimeout, Logger: log,
		MaxUpload: o.maxUpload, MaxExtract: o.maxExtract, MaxEntries: o.maxEntries,
		FaultDir: os.Getenv(agent.FaultDirEnv)})
	if err != nil {
		ln.Close()
		return err
	}
	// Caught for the whole run: a second signal ends the drain, it never
	// kills the agent with its services left running.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	cfg := agent.ServeConfig{Listener: ln, Signals: sigs, DrainTimeout: o.drainTimeout, Notify: func(state string) { _ = sdnotify.Notify(state) },
		MaxConns: o.maxConns, IdleTimeout: o.idleTimeout}
	if o.publish || o.registry.Enabled() {
		if err := announcer(o, ln, a, &cfg, log); err != nil {
			ln.Close()
			a.Close(false)
			return err
		}
	}
	return agent.Serve(context.Background(), a, cfg)
}

// announcer sets up the mDNS announcement of --publish and the etcd
// registration of --registry in cfg.
func announcer(o options, ln net.Listener, a *agent.Agent, cfg *agent.ServeConfig, log *zap.Logger) error {
	scheme := "http"
	if !o.insecureHTTP {
		scheme = "https"
	}
	endpoint := o.endpoint
	if endpoint == "" {
		var err error
		if endpoint, err = dcli.Endpoint(scheme, ln.Addr().(*net.TCPAddr), o.interfaces); err != nil {
			return err
		}
	}
	pcfg := discovery.PublisherConfig{PropertiesFile: o.properties, Endpoint: endpoint, SignKey: o.signKey, Logger: log}
	if o.publish {
		pcfg.Interfaces = o.interfaces
	}
	reg, err := o.registry.Config()
	if err != nil {
		return err
	}
	reg.Logger = log
	ann, err := dcli.NewAnnouncer(pcfg, reg)
	if err != nil {
		return err
	}
	cfg.Handler, cfg.Announce = ann.Routes(a.Handler()), ann.Run
	log.Info("publishing", zap.String("endpoint", endpoint), zap.Strings("interfaces", pcfg.Interfaces), zap.Strings("registry", reg.Endpoints))
	return nil
}
