// Package cli holds the command-line front ends of the discovery room:
// dydisnix-publishinfra and dydisnix-geninfra-mdns (also installed as
// dydisnix-geninfra-avahi). The main packages only call these functions.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
)

// InterfacesEnv names the environment variable that gives the interfaces
// when --interface is not: "eth0,eth1" or "eth0 eth1".
const InterfacesEnv = "DYDISNIX_MDNS_INTERFACES"

func interfacesFromEnv(flagVals []string) []string {
	if len(flagVals) > 0 {
		return flagVals
	}
	if env := os.Getenv(InterfacesEnv); env != "" {
		return strings.FieldsFunc(env, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return nil
}

// errNoInterface is the usage error of dydisnix-publishinfra without --interface.
var errNoInterface = cli.Usagef("no interface given: use --interface IF (mDNS is only used on named interfaces) or --registry etcd://HOST:2379")

const geninfraDoc = `Browses mDNS (DNS-SD type _disnix._tcp) on the named interfaces and prints the
infrastructure model of the machines that announce themselves (with
dydisnix-publishinfra, the original dydisnix-avahi publisher, or avahi-publish
in the same TXT format). With --registry it reads the machines registered in
etcd instead, or as well when interfaces are named (the registry's content
wins for a hostname both see). The interfaces may also come from
DYDISNIX_MDNS_INTERFACES="eth0,eth1"; without either, every interface that is
up, multicast-capable and not a loopback is browsed, as the original's Avahi
did. The default format is json, and nix when the command runs as
dydisnix-geninfra-avahi, as the original printed.`

type geninfraOptions struct {
	interfaces []string
	timeout    time.Duration
	out        cli.Output
	watch      bool
	verifyKey  string
	noProbe    bool
	browser    discovery.BrowserConfig
	registry   Registry
	log        cli.Log
}

// Geninfra is the main function of dydisnix-geninfra-mdns.
func Geninfra(name string, args []string, stdout, stderr io.Writer) int {
	c := cli.New(name, "[--interface IF] [options]", geninfraDoc)
	c.ExitStatus = exitStatus
	var o geninfraOptions
	fs := c.Flags
	fs.StringSliceVar(&o.interfaces, "interface", nil, "`IF` interface to browse on (repeatable; default: every up, multicast-capable, non-loopback interface)")
	cli.SecondsVarP(fs, &o.timeout, "timeout", "t", 2*time.Second, "`DUR` how long to listen before printing (a bare number means seconds)")
	formats := []string{"json", "nix"}
	// Under the original tool's name the default output is Nix, as the
	// original printed, for scripts that run it without options.
	if strings.HasSuffix(name, "geninfra-avahi") {
		formats = []string{"nix", "json"}
	}
	o.out.AddFlags(fs, "the model", formats...)
	fs.BoolVarP(&o.watch, "watch", "w", false, `keep browsing; print one JSON line per snapshot ({"infrastructure":..., "events":[...], "at":...})`)
	fs.StringVar(&o.verifyKey, "verify-key", "", "`FILE` ignore announcements not signed with this key (shared secret, or ed25519 PEM public or private key)")
	cli.SecondsVarP(fs, &o.browser.BrowseInterval, "browse-interval", "", discovery.DefaultBrowseInterval, "`DUR` time between browse rounds")
	cli.SecondsVarP(fs, &o.browser.Debounce, "debounce", "", discovery.DefaultDebounce, "`DUR` quiet period that ends a burst of changes")
	fs.BoolVar(&o.noProbe, "no-probe", false, "do not probe announced endpoints (a machine whose agent endpoint this host cannot reach stays in the model)")
	o.registry.AddFlags(fs)
	o.log.AddFlags(fs)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := o.out.Check(); err != nil {
		return c.Exit(err, stderr)
	}
	return c.Exit(browse(&o, stdout, stderr), stderr)
}

func browse(o *geninfraOptions, stdout, stderr io.Writer) error {
	cfg := o.browser
	reg, err := o.registry.Config()
	if err != nil {
		return err
	}
	if cfg.Interfaces = interfacesFromEnv(o.interfaces); len(cfg.Interfaces) == 0 && !reg.Enabled() {
		ifs, err := discovery.DefaultInterfaces()
		if err != nil {
			return err
		}
		if len(ifs) == 0 {
			return errors.New("no interface to browse: none is up, multicast-capable and not a loopback (name one with --interface IF)")
		}
		cfg.Interfaces = ifs
	}
	if o.timeout <= 0 {
		return cli.Usagef("--timeout must be positive")
	}
	cfg.InitialWait = o.timeout
	cfg.Logger = o.log.Logger(stderr)
	if o.noProbe {
		cfg.ProbeInterval = -1
	}
	if o.verifyKey != "" {
		k, err := discovery.LoadKey(o.verifyKey)
		if err != nil {
			return err
		}
		cfg.Verifier = k
	}
	reg.Logger = cfg.Logger
	choice := discovery.Choice{Interfaces: cfg.Interfaces, Browser: cfg, Registry: reg}
	src, err := choice.Source(cfg.Logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snaps := make(chan discovery.Snapshot)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, snaps) }()
	for {
		select {
		case err := <-errc:
			return err
		case snap := <-snaps:
			if o.watch {
				line, err := json.Marshal(snap)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\n", line)
				if f, ok := stdout.(*os.File); ok {
					f.Sync()
				}
				continue
			}
			cancel()
			<-errc
			data, err := model.Encode(snap.Infrastructure, model.Format(o.out.Format))
			if err != nil {
				return err
			}
			if len(data) > 0 && data[len(data)-1] != '\n' {
				data = append(data, '\n')
			}
			return o.out.Write(data, stdout, func(file string, data []byte) error { return model.WriteFileAtomic(file, data, 0o644) })
		}
	}
}

// exitStatus closes the help of both commands.
const exitStatus = "Exit status: 0 success, 1 error, 2 usage error."

const publishDoc = `Announces this machine over mDNS (DNS-SD type _disnix._tcp, instance
disnix-<hostname>) until stopped; sends a goodbye on SIGTERM/SIGINT. The TXT
record has the original dydisnix-avahi format (properties."<name>"=<value>,
containers.<c>."<name>"=<value>) plus txtvers, a content hash and, with an
endpoint, the agent URL. Properties too large for one TXT record are
published in compact form and fetched from the endpoint (GET <endpoint>/v1/target).
The interfaces may also come from DYDISNIX_MDNS_INTERFACES.`

type publishOptions struct {
	interfaces                                     []string
	properties, propertiesCommand, endpoint, serve string
	signKey                                        string
	registry                                       Registry
	dysnomia, compact, printOnly                   bool
	port                                           int
	ttl                                            uint32
	log                                            cli.Log
}

// Publish is the main function of dydisnix-publishinfra.
func Publish(name string, args []string, stdout, stderr io.Writer) int {
	c := cli.New(name, "--interface IF | --registry etcd://HOST:2379 [--properties FILE | --dysnomia] [options]", publishDoc)
	c.ExitStatus = exitStatus
	var o publishOptions
	fs := c.Flags
	fs.StringSliceVar(&o.interfaces, "interface", nil, "`IF` interface to announce on (repeatable)")
	fs.StringVar(&o.properties, "properties", "", "`FILE` the machine's properties (.json/.yaml/.nix, the shape of one infrastructure target); re-announced when the file changes")
	fs.BoolVar(&o.dysnomia, "dysnomia", false, "read the properties from 'dysnomia-containers --generate-expr'")
	fs.StringVar(&o.propertiesCommand, "properties-command", "", "`CMD` read the properties from the Nix or JSON output of CMD")
	fs.StringVar(&o.endpoint, "endpoint", "", "`URL` announce URL as this machine's agent endpoint")
	fs.StringVar(&o.serve, "serve", "", "`ADDR` serve GET /v1/target on ADDR (host:port) and, without --endpoint, announce it as the endpoint")
	fs.StringVar(&o.signKey, "sign-key", "", "`FILE` sign announcements (shared secret, or ed25519 PEM private key)")
	fs.IntVar(&o.port, "port", discovery.DefaultPort, "`N` SRV port (Disnix's SSH interface)")
	fs.Uint32Var(&o.ttl, "ttl", discovery.DefaultTTL, "`SECONDS` record TTL")
	fs.BoolVar(&o.compact, "compact", false, "always publish the compact form (needs an endpoint)")
	fs.BoolVar(&o.printOnly, "print", false, "print the TXT strings and exit (nothing is sent)")
	o.registry.AddFlags(fs)
	o.log.AddFlags(fs)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	return c.Exit(announce(&o, stdout, stderr), stderr)
}

func announce(o *publishOptions, stdout, stderr io.Writer) error {
	sources := 0
	for _, set := range []bool{o.properties != "", o.dysnomia, o.propertiesCommand != ""} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return cli.Usagef("give only one of --properties, --dysnomia and --properties-command")
	}
	if o.port <= 0 || o.port > 65535 {
		return cli.Usagef("--port must be 1-65535")
	}
	log := o.log.Logger(stderr)
	cfg := discovery.PublisherConfig{
		Interfaces:     interfacesFromEnv(o.interfaces),
		PropertiesFile: o.properties,
		Endpoint:       strings.TrimRight(o.endpoint, "/"),
		Port:           o.port,
		TTL:            o.ttl,
		ForceCompact:   o.compact,
		Logger:         log,
	}
	if o.dysnomia {
		cfg.PropertiesCommand = discovery.DysnomiaCommand
	} else if o.propertiesCommand != "" {
		cfg.PropertiesCommand = o.propertiesCommand
	}
	if o.signKey != "" {
		k, err := discovery.LoadKey(o.signKey)
		if err != nil {
			return err
		}
		if !k.CanSign() {
			return fmt.Errorf("--sign-key %s: a public key cannot sign; give the private key or the shared secret", o.signKey)
		}
		cfg.Signer = k
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.printOnly {
		return printTXT(ctx, cfg, stdout)
	}
	reg, err := o.registry.Config()
	if err != nil {
		return err
	}
	if len(cfg.Interfaces) == 0 && !reg.Enabled() {
		return errNoInterface
	}
	var ln net.Listener
	if o.serve != "" {
		var err error
		if ln, err = net.Listen("tcp", o.serve); err != nil {
			return fmt.Errorf("--serve %s: %w", o.serve, err)
		}
		if cfg.Endpoint == "" {
			if cfg.Endpoint, err = Endpoint("http", ln.Addr().(*net.TCPAddr), cfg.Interfaces); err != nil {
				return err
			}
		}
	}
	reg.Logger = log
	ann, err := NewAnnouncer(cfg, reg)
	if err != nil {
		return err
	}
	if ln != nil {
		srv := &http.Server{Handler: ann.Routes(nil), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving the target model", zap.String("addr", ln.Addr().String()), zap.String("endpoint", cfg.Endpoint+discovery.TargetPath))
	}
	return ann.Run(ctx)
}

// printTXT prints the TXT strings the publisher would announce.
func printTXT(ctx context.Context, cfg discovery.PublisherConfig, stdout io.Writer) error {
	t, err := loadForPrint(ctx, cfg)
	if err != nil {
		return err
	}
	t, err = discovery.ApplyHostname(t)
	if err == nil {
		t, err = discovery.NormalizeTarget(t)
	}
	if err != nil {
		return err
	}
	if len(t.Containers) == 0 {
		t.Containers = nil
	}
	txt, _, err := discovery.EncodeTXT(t, discovery.EncodeOptions{Endpoint: cfg.Endpoint, Signer: cfg.Signer, ForceCompact: cfg.ForceCompact})
	if err != nil {
		return err
	}
	for _, s := range txt {
		fmt.Fprintln(stdout, s)
	}
	return nil
}

func loadForPrint(ctx context.Context, cfg discovery.PublisherConfig) (*model.Target, error) {
	switch {
	case cfg.PropertiesFile != "":
		return discovery.LoadTargetFile(ctx, cfg.PropertiesFile)
	case cfg.PropertiesCommand != "":
		return discovery.TargetFromCommand(ctx, cfg.PropertiesCommand)
	}
	return &model.Target{Properties: map[string]any{}}, nil
}

// Endpoint is the URL to announce for a server listening on addr: addr
// itself when its host is specific, else the first IPv4 address (else the
// first IPv6 address that is not link-local) of the first of ifaces that
// has one. Used by --serve here and by dydisnix-agent --publish.
func Endpoint(scheme string, addr *net.TCPAddr, ifaces []string) (string, error) {
	url := func(ip net.IP) string {
		return scheme + "://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
	}
	if addr.IP != nil && !addr.IP.IsUnspecified() {
		return url(addr.IP), nil
	}
	for _, n := range ifaces {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			continue
		}
		addrs, _ := ifi.Addrs()
		var v6 net.IP
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			switch {
			case !ok || ipn.IP.IsLinkLocalUnicast():
			case ipn.IP.To4() != nil:
				return url(ipn.IP), nil
			case v6 == nil:
				v6 = ipn.IP
			}
		}
		if v6 != nil {
			return url(v6), nil
		}
	}
	return "", fmt.Errorf("cannot tell which address of %s to announce: give --endpoint", strings.Join(ifaces, ", "))
}
