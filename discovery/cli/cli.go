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

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

// Exit statuses of the commands.
const (
	exitOK    = 0
	exitModel = 1
	exitUsage = 2
)

func newLogger(w io.Writer, quiet bool) *zap.Logger {
	level := zapcore.InfoLevel
	if quiet {
		level = zapcore.WarnLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core)
}

// parseDuration accepts Go durations ("2s", "500ms") and bare seconds ("5").
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func interfacesFromEnv(flagVals []string) []string {
	if len(flagVals) > 0 {
		return flagVals
	}
	if env := os.Getenv("DYDISNIX_MDNS_INTERFACES"); env != "" {
		return strings.FieldsFunc(env, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return nil
}

const geninfraUsage = `Usage: %[1]s --interface IF [options]

Browses mDNS (DNS-SD type _disnix._tcp) on the named interfaces and prints the
infrastructure model of the machines that announce themselves (with
dydisnix-publishinfra, the original dydisnix-avahi publisher, or avahi-publish
in the same TXT format).

Options:
  -i, --interface IF       interface to browse on (repeatable; required, or
                           DYDISNIX_MDNS_INTERFACES="eth0,eth1")
  -t, --timeout DUR        how long to listen before printing (default 2s;
                           a bare number means seconds)
  -f, --format FMT         json or nix (default: json; nix when run as
                           dydisnix-geninfra-avahi, as the original printed)
  -o, --output FILE        write the model to FILE (atomically) instead of stdout
  -w, --watch              keep browsing; print one JSON line per snapshot
                           ({"infrastructure":..., "events":[...], "at":...})
      --verify-key FILE    ignore announcements not signed with this key
                           (shared secret, or ed25519 PEM public/private key)
      --browse-interval D  time between browse rounds (default 2s)
      --debounce D         quiet period that ends a burst of changes (default 250ms)
      --no-probe           do not probe announced endpoints (a machine whose agent
                           endpoint this host cannot reach stays in the model)
  -q, --quiet              only print warnings on stderr
  -h, --help               show this help

Exit status: 0 success, 1 error, 2 usage error.
`

// Geninfra is the main function of dydisnix-geninfra-mdns.
func Geninfra(name string, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ifaces := fs.StringSliceP("interface", "i", nil, "")
	timeout := fs.StringP("timeout", "t", "2s", "")
	// Under the original tool's name the default output is Nix, as the
	// original printed, for scripts that run it without options.
	defFormat := "json"
	if strings.HasSuffix(name, "geninfra-avahi") {
		defFormat = "nix"
	}
	format := fs.StringP("format", "f", defFormat, "")
	output := fs.StringP("output", "o", "", "")
	watch := fs.BoolP("watch", "w", false, "")
	verifyKey := fs.String("verify-key", "", "")
	browse := fs.String("browse-interval", "", "")
	debounce := fs.String("debounce", "", "")
	noProbe := fs.Bool("no-probe", false, "")
	quiet := fs.BoolP("quiet", "q", false, "")
	help := fs.BoolP("help", "h", false, "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
		fmt.Fprintf(stderr, "Try '%s --help'.\n", name)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		return usageErr("%v", err)
	}
	if *help {
		fmt.Fprintf(stdout, geninfraUsage, name)
		return exitOK
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *format != "json" && *format != "nix" {
		return usageErr("--format must be json or nix, not %q", *format)
	}
	names := interfacesFromEnv(*ifaces)
	if len(names) == 0 {
		return usageErr("no interface given: use --interface IF (mDNS is only used on named interfaces)")
	}
	wait, err := parseDuration(*timeout)
	if err != nil || wait <= 0 {
		return usageErr("--timeout: expected a duration such as 2s, got %q", *timeout)
	}
	cfg := discovery.BrowserConfig{Interfaces: names, InitialWait: wait, Logger: newLogger(stderr, *quiet)}
	if *noProbe {
		cfg.ProbeInterval = -1
	}
	if *browse != "" {
		if cfg.BrowseInterval, err = parseDuration(*browse); err != nil {
			return usageErr("--browse-interval: %v", err)
		}
	}
	if *debounce != "" {
		if cfg.Debounce, err = parseDuration(*debounce); err != nil {
			return usageErr("--debounce: %v", err)
		}
	}
	if *verifyKey != "" {
		k, err := discovery.LoadKey(*verifyKey)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return exitModel
		}
		cfg.Verifier = k
	}
	src, err := discovery.NewMDNSSource(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitModel
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
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				return exitModel
			}
			return exitOK
		case snap := <-snaps:
			if *watch {
				line, err := json.Marshal(snap)
				if err != nil {
					fmt.Fprintf(stderr, "%s: %v\n", name, err)
					return exitModel
				}
				fmt.Fprintf(stdout, "%s\n", line)
				if f, ok := stdout.(*os.File); ok {
					f.Sync()
				}
				continue
			}
			cancel()
			<-errc
			if err := writeInfra(snap.Infrastructure, model.Format(*format), *output, stdout); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				return exitModel
			}
			return exitOK
		}
	}
}

func writeInfra(infra model.Infrastructure, format model.Format, output string, stdout io.Writer) error {
	if output != "" {
		return model.WriteModelFile(output, infra, format)
	}
	data, err := model.Encode(infra, format)
	if err != nil {
		return err
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	_, err = stdout.Write(data)
	return err
}

const publishUsage = `Usage: %[1]s --interface IF [--properties FILE | --dysnomia] [options]

Announces this machine over mDNS (DNS-SD type _disnix._tcp, instance
disnix-<hostname>) until stopped; sends a goodbye on SIGTERM/SIGINT. The TXT
record has the original dydisnix-avahi format (properties."<name>"=<value>,
containers.<c>."<name>"=<value>) plus txtvers, a content hash and, with an
endpoint, the agent URL. Properties too large for one TXT record are
published in compact form and fetched from the endpoint (GET <endpoint>/v1/target).

Options:
  -i, --interface IF         interface to announce on (repeatable; required,
                             or DYDISNIX_MDNS_INTERFACES)
  -p, --properties FILE      the machine's properties (.json/.yaml/.nix, the
                             shape of one infrastructure target); re-announced
                             when the file changes
      --dysnomia             read the properties from
                             'dysnomia-containers --generate-expr'
      --properties-command C read them from the Nix/JSON output of command C
      --endpoint URL         announce URL as this machine's agent endpoint
      --serve ADDR           serve GET /v1/target on ADDR (host:port) and, without
                             --endpoint, announce it as the endpoint
      --sign-key FILE        sign announcements (shared secret, or ed25519
                             PEM private key)
      --port N               SRV port (default 22, Disnix's SSH interface)
      --ttl SECONDS          record TTL (default 120)
      --compact              always publish the compact form (needs an endpoint)
      --print                print the TXT strings and exit (nothing is sent)
  -q, --quiet                only print warnings on stderr
  -h, --help                 show this help

Exit status: 0 success, 1 error, 2 usage error.
`

// Publish is the main function of dydisnix-publishinfra.
func Publish(name string, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ifaces := fs.StringSliceP("interface", "i", nil, "")
	props := fs.StringP("properties", "p", "", "")
	dysnomia := fs.Bool("dysnomia", false, "")
	propsCmd := fs.String("properties-command", "", "")
	endpoint := fs.String("endpoint", "", "")
	serve := fs.String("serve", "", "")
	signKey := fs.String("sign-key", "", "")
	port := fs.Int("port", discovery.DefaultPort, "")
	ttl := fs.Uint32("ttl", discovery.DefaultTTL, "")
	compact := fs.Bool("compact", false, "")
	printOnly := fs.Bool("print", false, "")
	quiet := fs.BoolP("quiet", "q", false, "")
	help := fs.BoolP("help", "h", false, "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
		fmt.Fprintf(stderr, "Try '%s --help'.\n", name)
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitModel
	}
	if err := fs.Parse(args); err != nil {
		return usageErr("%v", err)
	}
	if *help {
		fmt.Fprintf(stdout, publishUsage, name)
		return exitOK
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	sources := 0
	for _, set := range []bool{*props != "", *dysnomia, *propsCmd != ""} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return usageErr("give only one of --properties, --dysnomia and --properties-command")
	}
	if *port <= 0 || *port > 65535 {
		return usageErr("--port must be 1-65535")
	}
	log := newLogger(stderr, *quiet)
	cfg := discovery.PublisherConfig{
		Interfaces:     interfacesFromEnv(*ifaces),
		PropertiesFile: *props,
		Endpoint:       strings.TrimRight(*endpoint, "/"),
		Port:           *port,
		TTL:            *ttl,
		ForceCompact:   *compact,
		Logger:         log,
	}
	if *dysnomia {
		cfg.PropertiesCommand = discovery.DysnomiaCommand
	} else if *propsCmd != "" {
		cfg.PropertiesCommand = *propsCmd
	}
	if *signKey != "" {
		k, err := discovery.LoadKey(*signKey)
		if err != nil {
			return fail(err)
		}
		if !k.CanSign() {
			return fail(fmt.Errorf("--sign-key %s: a public key cannot sign; give the private key or the shared secret", *signKey))
		}
		cfg.Signer = k
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *printOnly {
		t, err := loadForPrint(ctx, cfg)
		if err != nil {
			return fail(err)
		}
		t, err = discovery.ApplyHostname(t)
		if err == nil {
			t, err = discovery.NormalizeTarget(t)
		}
		if err != nil {
			return fail(err)
		}
		if len(t.Containers) == 0 {
			t.Containers = nil
		}
		txt, _, err := discovery.EncodeTXT(t, discovery.EncodeOptions{Endpoint: cfg.Endpoint, Signer: cfg.Signer, ForceCompact: cfg.ForceCompact})
		if err != nil {
			return fail(err)
		}
		for _, s := range txt {
			fmt.Fprintln(stdout, s)
		}
		return exitOK
	}
	if len(cfg.Interfaces) == 0 {
		return usageErr("no interface given: use --interface IF (mDNS is only used on named interfaces)")
	}
	var ln net.Listener
	if *serve != "" {
		var err error
		ln, err = net.Listen("tcp", *serve)
		if err != nil {
			return fail(fmt.Errorf("--serve %s: %w", *serve, err))
		}
		if cfg.Endpoint == "" {
			ep, err := endpointFor(ln.Addr().(*net.TCPAddr), cfg.Interfaces)
			if err != nil {
				return fail(err)
			}
			cfg.Endpoint = ep
		}
	}
	pub, err := discovery.NewPublisher(cfg)
	if err != nil {
		return fail(err)
	}
	if ln != nil {
		srv := &http.Server{Handler: routes(pub), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving the target model", zap.String("addr", ln.Addr().String()), zap.String("endpoint", cfg.Endpoint+discovery.TargetPath))
	}
	if err := pub.Run(ctx); err != nil {
		return fail(err)
	}
	return exitOK
}

func routes(pub *discovery.Publisher) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(discovery.TargetPath, discovery.TargetHandler(pub.Target))
	return mux
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

// endpointFor turns a listening address into a URL others can reach: an
// unspecified host becomes the first IPv4 address of the interfaces.
func endpointFor(addr *net.TCPAddr, ifaces []string) (string, error) {
	if addr.IP != nil && !addr.IP.IsUnspecified() {
		return "http://" + net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port)), nil
	}
	for _, n := range ifaces {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return "http://" + net.JoinHostPort(ipn.IP.String(), strconv.Itoa(addr.Port)), nil
			}
		}
	}
	return "", errors.New("--serve: cannot tell which address to announce; give --endpoint")
}
