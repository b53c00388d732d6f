// Command dydisnix-agent is the embedded deployment agent that runs on every
// target: an authenticated HTTP/JSON API that activates, supervises,
// snapshots and restores services for the coordinator.
//
//	dydisnix-agent --listen ADDR --state-dir DIR --token-file F [--publish --interface IF]
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/discovery"
)

const usage = `Usage: dydisnix-agent --listen ADDR --state-dir DIR --token-file FILE [options]

Runs the deployment agent of a target. Every request must carry
"Authorization: Bearer <token>" (the content of --token-file, surrounding
white space removed); any other request gets 401.

Options:
      --listen ADDR          address to listen on (default :7420)
      --state-dir DIR        the agent's state directory (required)
      --token-file FILE      file holding the bearer token (required)
      --tls-cert FILE        serve HTTPS with this certificate ...
      --tls-key FILE         ... and this key
      --keep N               snapshot generations kept per service (default 2)
      --drain-timeout DUR    on SIGTERM, how long to wait for the coordinator to
                             move the services away before stopping them (default 2m)
      --start-timeout DUR    how long an activation waits for a process to run
                             and pass its health check (default 20s)
      --publish              announce this machine over mDNS (in-process publisher)
                             with the agent's URL as its endpoint
      --properties FILE      the machine's properties for --publish (JSON, YAML, Nix)
      --interface IF         interface(s) to announce on (repeatable; required with --publish)
      --endpoint URL         the URL announced (default: http(s)://<address of the
                             first --interface>:<port>)
      --log-format FMT       console (default) or json
  -h, --help                 show this help

On SIGTERM or SIGINT the agent drains: it withdraws its mDNS announcement,
reports "draining" in /v1/health and /v1/drain, refuses new activations,
keeps serving until the coordinator has moved its services away (or
--drain-timeout passes), then stops its processes and exits 0.

Exit status: 0 success, 1 runtime error, 2 usage error.
`

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

type options struct {
	listen, stateDir, tokenFile, tlsCert, tlsKey string
	keep                                         int
	drainTimeout, startTimeout                   time.Duration
	publish                                      bool
	properties, endpoint, logFormat              string
	interfaces                                   []string
	help                                         bool
}

func run(args []string, stderr io.Writer) int {
	var o options
	fs := pflag.NewFlagSet("dydisnix-agent", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.listen, "listen", ":7420", "")
	fs.StringVar(&o.stateDir, "state-dir", "", "")
	fs.StringVar(&o.tokenFile, "token-file", "", "")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "")
	fs.StringVar(&o.tlsKey, "tls-key", "", "")
	fs.IntVar(&o.keep, "keep", 2, "")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 2*time.Minute, "")
	fs.DurationVar(&o.startTimeout, "start-timeout", 20*time.Second, "")
	fs.BoolVar(&o.publish, "publish", false, "")
	fs.StringVar(&o.properties, "properties", "", "")
	fs.StringArrayVar(&o.interfaces, "interface", nil, "")
	fs.StringVar(&o.endpoint, "endpoint", "", "")
	fs.StringVar(&o.logFormat, "log-format", "console", "")
	fs.BoolVarP(&o.help, "help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-agent: %v\n\n%s", err, usage)
		return 2
	}
	if o.help {
		fmt.Fprint(os.Stdout, usage)
		return 0
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "dydisnix-agent: %s\n\n%s", msg, usage)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected arguments: " + strings.Join(fs.Args(), " "))
	case o.stateDir == "":
		return usageErr("--state-dir is required")
	case o.tokenFile == "":
		return usageErr("--token-file is required")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return usageErr("--tls-cert and --tls-key go together")
	case o.publish && len(o.interfaces) == 0:
		return usageErr("--publish needs --interface (never announced on every interface)")
	case o.logFormat != "console" && o.logFormat != "json":
		return usageErr("--log-format: expected console or json")
	}
	log, err := newLogger(o.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-agent:", err)
		return 1
	}
	defer log.Sync()
	if err := serve(o, log); err != nil {
		log.Error("agent failed", zap.Error(err))
		fmt.Fprintln(stderr, "dydisnix-agent:", err)
		return 1
	}
	return 0
}

func newLogger(format string) (*zap.Logger, error) {
	var cfg zap.Config
	if format == "json" {
		cfg = zap.NewProductionConfig()
	} else {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.OutputPaths = []string{"stderr"}
	return cfg.Build()
}

// readToken reads a token file; the token never appears in logs.
func readToken(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", file)
	}
	return []byte(tok), nil
}

func serve(o options, log *zap.Logger) error {
	token, err := readToken(o.tokenFile)
	if err != nil {
		return err
	}
	ln, err := agent.Listen(o.listen, o.tlsCert, o.tlsKey)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{StateDir: o.stateDir, Token: token, Keep: o.keep, StartTimeout: o.startTimeout, Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	// Caught for the whole run: a second signal ends the drain, it never
	// kills the agent with its services left running.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	cfg := agent.ServeConfig{Listener: ln, Signals: sigs, DrainTimeout: o.drainTimeout, Notify: notifySystemd}
	if o.publish {
		if err := publisher(o, ln, a, &cfg, log); err != nil {
			ln.Close()
			a.Close(false)
			return err
		}
	}
	return agent.Serve(context.Background(), a, cfg)
}

// publisher sets up the mDNS announcement of --publish in cfg.
func publisher(o options, ln net.Listener, a *agent.Agent, cfg *agent.ServeConfig, log *zap.Logger) error {
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	endpoint := o.endpoint
	if endpoint == "" {
		var err error
		if endpoint, err = defaultEndpoint(scheme, ln.Addr().(*net.TCPAddr), o.interfaces[0]); err != nil {
			return err
		}
	}
	pub, err := discovery.NewPublisher(discovery.PublisherConfig{Interfaces: o.interfaces, PropertiesFile: o.properties,
		Endpoint: endpoint, Logger: log})
	if err != nil {
		return err
	}
	// The target document is what the announcement carries anyway
	// (public, no secrets): the browser fetches it without a token.
	mux := http.NewServeMux()
	mux.Handle(discovery.TargetPath, discovery.TargetHandler(pub.Target))
	mux.Handle("/", a.Handler())
	cfg.Handler, cfg.Announce = mux, pub.Run
	log.Info("publishing", zap.String("endpoint", endpoint), zap.Strings("interfaces", o.interfaces))
	return nil
}

// defaultEndpoint derives the announced URL: the listen address when it is
// specific, else the first IPv4 (or IPv6) address of the interface.
func defaultEndpoint(scheme string, addr *net.TCPAddr, ifname string) (string, error) {
	port := fmt.Sprint(addr.Port)
	if !addr.IP.IsUnspecified() {
		return scheme + "://" + net.JoinHostPort(addr.IP.String(), port), nil
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return "", fmt.Errorf("--interface %s: %w", ifname, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("--interface %s: %w", ifname, err)
	}
	var v6 string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			return scheme + "://" + net.JoinHostPort(ipn.IP.String(), port), nil
		}
		if v6 == "" {
			v6 = ipn.IP.String()
		}
	}
	if v6 != "" {
		return scheme + "://" + net.JoinHostPort(v6, port), nil
	}
	return "", fmt.Errorf("--interface %s has no usable address: give --endpoint", ifname)
}

// notifySystemd sends a state to systemd's notify socket (Type=notify), if any.
func notifySystemd(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
