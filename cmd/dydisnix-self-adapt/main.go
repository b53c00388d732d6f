// Command dydisnix-self-adapt is the self-adaptive deployment loop: it
// watches the infrastructure (mDNS, a generator command or a file) and the
// model files, and redeploys the system whenever they change.
//
//	dydisnix-self-adapt -s services.nix -q builtin:roundrobin --interface eth0 --agent-token-file token
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/deployer/disnix"
	"github.com/dydisnix/dydisnix/discovery"
)

const usage = `Usage: dydisnix-self-adapt -s SERVICES -q POLICY [options]

Runs forever: discovers the infrastructure, augments it, and whenever the
augmented infrastructure or a model file changes, computes a new
distribution with the QoS policy (the deployed distribution is passed to it
as the previous one), assigns ports and IDs and redeploys. Bursts of events
yield one redeploy; a machine that flaps is kept out until it is stable
(see docs/adapt.md); failed deploys are retried with exponential backoff.

Models:
  -s, --services FILE          services model (required)
  -q, --qos POLICY             QoS policy file or builtin:NAME (required)
  -F, --filters FILE           policy file whose steps run before the QoS policy's
  -a, --augment FILE           augmentation model (secrets added on the coordinator)
      --ports FILE             ports file: assign ports, keep the file
      --id-resources FILE      ID resources model ...
      --ids FILE               ... and the ids file to assign IDs into
      --ids-service-property P service property listing a service's ID resources

Infrastructure (first that applies):
      --interface IF           browse mDNS (_disnix._tcp) on IF (repeatable)
      --verify-key FILE        ignore mDNS announcements not signed with this key
      --geninfra CMD           run CMD (else $DYDISNIX_GENINFRA) every --interval;
                               its stdout is a JSON or Nix infrastructure model
  -i, --infrastructure FILE    a static infrastructure file, watched for changes

Loop:
      --interval N             resync period (seconds or a duration; default 5):
                               model files reloaded, hash compared; also the
                               --geninfra period
      --snapshot               snapshot the state of every stateful service on a schedule
      --snapshot-schedule SPEC cron schedule of --snapshot (robfig/cron, default "@every 1m")
      --reconstruct            rebuild the manifest from the targets before each deploy
      --debounce DUR           quiet period before a redeploy (default 150ms)
      --remove-grace DUR       grace period of a removal without goodbye (default 250ms)
      --stabilise DUR          how long a returning machine must stay (default 10s)
      --flap-stabilise DUR     the same for a flapping machine (default 2m)
      --settle DUR             wait after start before the first deploy (default 2s)
      --shutdown-timeout DUR   on SIGTERM, how long a running deploy may go on
                               before it is cancelled and rolled back (default 2m)

Deployment:
      --deployer NAME          agent (default) or disnix
      --agent-token-file F     bearer token of the agents (agent deployer; required)
      --state-dir DIR          manifest generations and snapshot store
                               (default $DYDISNIX_STATE_DIR, else ~/.dydisnix)
      --target-property P      property holding a target's agent URL (default agentURL)
  -m, --max-concurrent N       steps run in parallel (default 4)
      --keep N                 snapshot generations kept (default 3)
      --delete-state           delete the old copy of moved state
      --no-migration           do not move state
      --deploy-state           every service's state is managed
      --no-lock                do not lock the targets
  -p, --profile NAME           Disnix profile (disnix deployer)
      --coordinator-profile-path DIR  (disnix deployer)

Observability:
      --status-listen ADDR     serve /, /status, /metrics, /healthz (default
                               127.0.0.1:9470; "" disables)
      --log-format FMT         console (default) or json
      --log-level LEVEL        debug, info (default), warn, error
  -h, --help                   show this help

Exit status: 0 after SIGTERM/SIGINT (a running deploy finished or rolled
back), 1 on a model error at start or when discovery fails, 2 on a usage error.
`

type options struct {
	adapt.PipelineConfig
	ifaces                                       []string
	verifyKey, geninfra, infraFile, interval     string
	snapshot, reconstruct                        bool
	snapshotSchedule                             string
	timing                                       adapt.Timing
	shutdownTimeout                              time.Duration
	deployer, tokenFile, stateDir, targetProp    string
	parallel, keep                               int
	deleteState, noMigration, deployState, lock0 bool
	profile, coordProfile                        string
	listen, logFormat, logLevel                  string
	help                                         bool
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := pflag.NewFlagSet("dydisnix-self-adapt", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVarP(&o.Services, "services", "s", "", "")
	fs.StringVarP(&o.QoS, "qos", "q", "", "")
	fs.StringVarP(&o.Filters, "filters", "F", "", "")
	fs.StringVarP(&o.Augment, "augment", "a", "", "")
	fs.StringVar(&o.Ports, "ports", "", "")
	fs.StringVar(&o.IDResources, "id-resources", "", "")
	fs.StringVar(&o.IDs, "ids", "", "")
	fs.StringVar(&o.IDsServiceProperty, "ids-service-property", "", "")
	fs.StringArrayVar(&o.ifaces, "interface", nil, "")
	fs.StringVar(&o.verifyKey, "verify-key", "", "")
	fs.StringVar(&o.geninfra, "geninfra", "", "")
	fs.StringVarP(&o.infraFile, "infrastructure", "i", "", "")
	fs.StringVar(&o.interval, "interval", "5", "")
	fs.BoolVar(&o.snapshot, "snapshot", false, "")
	fs.StringVar(&o.snapshotSchedule, "snapshot-schedule", "", "")
	fs.BoolVar(&o.reconstruct, "reconstruct", false, "")
	fs.DurationVar(&o.timing.Debounce, "debounce", 0, "")
	fs.DurationVar(&o.timing.RemoveGrace, "remove-grace", 0, "")
	fs.DurationVar(&o.timing.Stabilise, "stabilise", 0, "")
	fs.DurationVar(&o.timing.FlapStabilise, "flap-stabilise", 0, "")
	fs.DurationVar(&o.timing.InitialSettle, "settle", 0, "")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 2*time.Minute, "")
	fs.StringVar(&o.deployer, "deployer", "agent", "")
	fs.StringVar(&o.tokenFile, "agent-token-file", "", "")
	fs.StringVar(&o.stateDir, "state-dir", "", "")
	fs.StringVar(&o.targetProp, "target-property", "", "")
	fs.IntVarP(&o.parallel, "max-concurrent", "m", 4, "")
	fs.IntVar(&o.keep, "keep", 3, "")
	fs.BoolVar(&o.deleteState, "delete-state", false, "")
	fs.BoolVar(&o.noMigration, "no-migration", false, "")
	fs.BoolVar(&o.deployState, "deploy-state", false, "")
	fs.BoolVar(&o.lock0, "no-lock", false, "")
	fs.StringVarP(&o.profile, "profile", "p", "", "")
	fs.StringVar(&o.coordProfile, "coordinator-profile-path", "", "")
	fs.StringVar(&o.listen, "status-listen", "127.0.0.1:9470", "")
	fs.StringVar(&o.logFormat, "log-format", "console", "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	fs.BoolVarP(&o.help, "help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-self-adapt: %v\n\n%s", err, usage)
		return 2
	}
	if o.help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	uerr := func(msg string) int {
		fmt.Fprintf(stderr, "dydisnix-self-adapt: %s\n\n%s", msg, usage)
		return 2
	}
	interval, err := parseInterval(o.interval)
	if o.geninfra == "" {
		o.geninfra = os.Getenv(discovery.GeninfraEnv)
	}
	switch {
	case fs.NArg() > 0:
		return uerr("unexpected arguments: " + strings.Join(fs.Args(), " "))
	case o.Services == "":
		return uerr("ERROR: A services expression must be specified!")
	case o.QoS == "":
		return uerr("ERROR: A quality of service model must be specified!")
	case len(o.ifaces) == 0 && o.geninfra == "" && o.infraFile == "":
		return uerr("ERROR: An infrastructure generator must be specified! (--interface, --geninfra, $DYDISNIX_GENINFRA or -i)")
	case err != nil:
		return uerr(err.Error())
	case o.deployer != "agent" && o.deployer != "disnix":
		return uerr("--deployer: expected agent or disnix")
	case o.deployer == "agent" && o.tokenFile == "":
		return uerr("--agent-token-file is required with the agent deployer")
	case (o.IDResources == "") != (o.IDs == ""):
		return uerr("--id-resources and --ids go together")
	case o.logFormat != "console" && o.logFormat != "json":
		return uerr("--log-format: expected console or json")
	case o.parallel < 1:
		return uerr("-m: expected a positive number")
	case o.snapshotSchedule != "" && !o.snapshot:
		return uerr("--snapshot-schedule needs --snapshot")
	}
	if o.snapshotSchedule != "" {
		if _, err := cron.ParseStandard(o.snapshotSchedule); err != nil {
			return uerr(fmt.Sprintf("--snapshot-schedule %q: %v", o.snapshotSchedule, err))
		}
	}
	o.timing.Resync = interval
	log, err := newLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		return uerr(err.Error())
	}
	defer log.Sync() //nolint:errcheck
	if o.stateDir == "" {
		o.stateDir = defaultStateDir()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, &o, interval, log); err != nil {
		log.Error("dydisnix-self-adapt", zap.Error(err))
		return 1
	}
	return 0
}

func serve(ctx context.Context, o *options, interval time.Duration, log *zap.Logger) error {
	o.Logger = log
	planner, err := adapt.NewModelPlanner(o.PipelineConfig)
	if err != nil {
		return err
	}
	src, err := source(o, interval, log)
	if err != nil {
		return err
	}
	var dep adapt.Deployer
	var snap adapt.Snapshotter
	switch o.deployer {
	case "agent":
		tok, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("agent token file: %w", err)
		}
		a, err := adapt.NewAgentDeployer(adapt.AgentConfig{StateDir: o.stateDir, Keep: o.keep, Token: strings.TrimSpace(string(tok)),
			Parallel: o.parallel, TargetProperty: o.targetProp, BaseDir: filepath.Dir(o.Services), DeployState: o.deployState,
			NoMigration: o.noMigration, DeleteState: o.deleteState, NoLock: o.lock0, Logger: log})
		if err != nil {
			return err
		}
		dep, snap = a, a
	case "disnix":
		d, err := adapt.NewDisnixDeployer(adapt.DisnixConfig{ServicesFile: o.Services, StateDir: o.stateDir, Log: os.Stderr,
			Options: disnix.Options{Profile: o.profile, CoordinatorProfilePath: o.coordProfile, MaxConcurrentTransfers: o.parallel,
				Keep: o.keep, DeployState: o.deployState, NoMigration: o.noMigration, DeleteState: o.deleteState, NoLock: o.lock0,
				TargetProperty: o.targetProp}})
		if err != nil {
			return err
		}
		dep, snap = d, d
	}
	cfg := adapt.Config{
		Source: src, Planner: planner, Deployer: dep, WatchFiles: planner.WatchFiles(),
		Reconstruct: o.reconstruct, Timing: o.timing, ShutdownTimeout: o.shutdownTimeout, Logger: log,
		OnReady: func() {
			if err := adapt.Notify("READY=1"); err != nil {
				log.Warn("systemd notify", zap.Error(err))
			}
		},
	}
	if o.snapshot {
		cfg.Snapshotter, cfg.SnapshotSchedule = snap, o.snapshotSchedule
	}
	loop, err := adapt.New(cfg)
	if err != nil {
		return err
	}
	var srv *http.Server
	if o.listen != "" {
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("--status-listen: %w", err)
		}
		srv = &http.Server{Handler: loop.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status server", zap.Error(err))
			}
		}()
		log.Info("status page", zap.String("url", "http://"+ln.Addr().String()+"/"))
	}
	finished := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			log.Info("stopping: finishing the running deploy, if any")
			_ = adapt.Notify("STOPPING=1")
		case <-finished:
		}
	}()
	err = loop.Run(ctx)
	close(finished)
	<-stopped
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return err
}

func source(o *options, interval time.Duration, log *zap.Logger) (adapt.Source, error) {
	switch {
	case len(o.ifaces) > 0:
		cfg := discovery.BrowserConfig{Interfaces: o.ifaces, Logger: log,
			// The loop has its own hysteresis: discovery reports a goodbye at
			// once (no RFC 6762 1 s grace) so a graceful stop is acted on in
			// well under a second, and its debounce is kept short.
			GoodbyeGrace: -1, Debounce: 100 * time.Millisecond, MaxDelay: time.Second}
		if o.verifyKey != "" {
			k, err := discovery.LoadKey(o.verifyKey)
			if err != nil {
				return nil, err
			}
			cfg.Verifier = k
		}
		s, err := discovery.NewMDNSSource(cfg)
		if err != nil {
			return nil, err
		}
		return adapt.DiscoverySource{Source: s}, nil
	case o.geninfra != "":
		s, err := discovery.NewCommandSource(o.geninfra, interval)
		if err != nil {
			return nil, err
		}
		s.Logger = log
		return adapt.DiscoverySource{Source: s}, nil
	default:
		s := discovery.NewFileSource(o.infraFile)
		return adapt.DiscoverySource{Source: s}, nil
	}
}

// parseInterval reads --interval: a number of seconds, as the original, or
// a Go duration.
func parseInterval(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("--interval: expected a positive number of seconds, got %q", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--interval: expected seconds or a duration such as 30s, got %q", s)
	}
	return d, nil
}

func newLogger(format, level string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

func defaultStateDir() string {
	if d := os.Getenv("DYDISNIX_STATE_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dydisnix"
	}
	return filepath.Join(home, ".dydisnix")
}
