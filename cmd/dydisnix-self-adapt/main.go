// Command dydisnix-self-adapt is the self-adaptive deployment loop: it
// watches the infrastructure (mDNS, a generator command or a file) and the
// model files, and runs a deploy pass (rollout.Pass) whenever they change.
//
//	dydisnix-self-adapt -s services.nix -q builtin:stable-by-type-memory --mdns-interface eth0 --agent-token-file token
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/discovery"
	dcli "github.com/dydisnix/dydisnix/discovery/cli"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/rollout"
)

const doc = `Runs forever: discovers the infrastructure, augments it, and whenever the
augmented infrastructure or a model file changes, computes a new
distribution with the QoS policy (the deployed distribution is passed to it
as the previous one), assigns ports and IDs and redeploys. Bursts of events
yield one redeploy; a machine that flaps is kept out until it is stable
(see docs/adapt.md); failed deploys are retried with exponential backoff.
The infrastructure comes from -i (a file, watched), else --geninfra (else
$DYDISNIX_GENINFRA, run every --interval), else the etcd --registry and/or
mDNS on --mdns-interface (combined: the registry's content wins).
With --registry the fleet's coordinators elect a leader: only the leader
deploys and keeps its record in etcd, a standby takes over when it fails
(docs/registry.md).
dydisnix-ctl pauses, drains, cordons or redeploys through the control
socket control.sock in the state directory (mode 0600).`

type options struct {
	pass             rollout.Config
	agent            cli.Agent
	state            cli.StateDir
	log              cli.Log
	infra            discovery.Choice
	registry         dcli.Registry
	verifyKey        string
	snapshot         bool
	snapshotSchedule string
	timing           adapt.Timing
	shutdownTimeout  time.Duration
	listen           string
	leaderTTL        time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("dydisnix-self-adapt", "-s SERVICES -q POLICY [options]", doc)
	c.ExitStatus = "Exit status: 0 after SIGTERM/SIGINT (a running deploy finished or rolled back), 1 on a model\n" +
		"error at start or when discovery fails, 2 on a usage error."
	o := &options{}
	f := c.Flags
	o.pass.AddFlags(f, false)
	f.StringVarP(&o.infra.File, "infrastructure", "i", "", "`FILE` static infrastructure model, watched for changes")
	f.StringVar(&o.infra.Command, "geninfra", os.Getenv(discovery.GeninfraEnv), "`CMD` infrastructure generator run every --interval (default $"+discovery.GeninfraEnv+")")
	f.StringArrayVar(&o.infra.Interfaces, "mdns-interface", nil, "browse mDNS (_disnix._tcp) on `IF` (repeatable)")
	f.StringVar(&o.verifyKey, "verify-key", "", "ignore mDNS announcements and registrations not signed with the key in `FILE`")
	o.registry.AddFlags(f)
	o.addHAFlags(f)
	cli.SecondsVarP(f, &o.timing.Resync, "interval", "", 5*time.Second, "resync period (seconds or a duration): models reloaded, hash compared")
	f.BoolVar(&o.snapshot, "snapshot", false, "snapshot the state of every stateful service on a schedule")
	f.StringVar(&o.snapshotSchedule, "snapshot-schedule", "", "cron `SPEC` of --snapshot (default \"@every 1m\")")
	f.DurationVar(&o.timing.Debounce, "debounce", 0, "quiet period before a redeploy (default 150ms)")
	f.DurationVar(&o.timing.RemoveGrace, "remove-grace", 0, "grace period of a removal without goodbye (default 250ms)")
	f.DurationVar(&o.timing.Stabilise, "stabilise", 0, "how long a returning machine must stay (default 10s)")
	f.DurationVar(&o.timing.FlapStabilise, "flap-stabilise", 0, "the same for a flapping machine (default 2m)")
	f.DurationVar(&o.timing.InitialSettle, "settle", 0, "wait after start before the first deploy (default 2s)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 2*time.Minute, "on SIGTERM, how long a running deploy may go on")
	o.agent.AddFlags(f)
	o.state.AddFlags(f)
	f.StringVar(&o.listen, "status-listen", "127.0.0.1:9470", "serve /, /status, /metrics, /healthz on `ADDR` (\"\" disables)")
	o.log.AddFlags(f)
	if code, done := c.Parse(args, stdout, stderr); done {
		return code
	}
	if err := o.check(); err != nil {
		return c.Exit(err, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := o.log.Logger(stderr)
	defer log.Sync() //nolint:errcheck
	if err := serve(ctx, o, log); err != nil {
		log.Error("dydisnix-self-adapt", zap.Error(err))
		return 1
	}
	return 0
}

func (o *options) check() error {
	o.pass.ChooseDeployer(o.agent.Configured())
	if err := o.registry.Into(&o.infra); err != nil {
		return err
	}
	m := o.pass.Models
	switch {
	case m.Services == "":
		return cli.Usagef("ERROR: A services expression must be specified!")
	case m.QoS == "":
		return cli.Usagef("ERROR: A quality of service model must be specified!")
	case o.infra.File == "" && o.infra.Command == "" && len(o.infra.Interfaces) == 0 && !o.infra.Registry.Enabled():
		return cli.Usagef("ERROR: An infrastructure generator must be specified! (-i, --geninfra, $DYDISNIX_GENINFRA, --mdns-interface or --registry)")
	case o.timing.Resync <= 0:
		return cli.Usagef("--interval: expected a positive number of seconds or a duration")
	case o.snapshotSchedule != "" && !o.snapshot:
		return cli.Usagef("--snapshot-schedule needs --snapshot")
	}
	if err := o.pass.Check(); err != nil {
		return err
	}
	if o.pass.Deployer == "agent" {
		if err := o.agent.Require(); err != nil {
			return err
		}
	}
	if err := o.checkHA(); err != nil {
		return err
	}
	if o.snapshotSchedule != "" {
		if _, err := cron.ParseStandard(o.snapshotSchedule); err != nil {
			return cli.Usagef("--snapshot-schedule %q: %v", o.snapshotSchedule, err)
		}
	}
	return nil
}

func serve(ctx context.Context, o *options, log *zap.Logger) error {
	o.pass.StateDir, o.pass.Logger = o.state.Path(), log
	o.pass.Progress = rollout.LogProgress(log)
	if err := o.pass.UseAgents(&o.agent); err != nil {
		return err
	}
	el, resign, err := o.elect(log)
	if err != nil {
		return err
	}
	defer resign()
	pass, err := rollout.New(o.pass)
	if err != nil {
		return err
	}
	o.infra.Interval = o.timing.Resync
	// The loop has its own hysteresis: discovery reports a goodbye at once
	// (no RFC 6762 1 s grace) so a graceful stop is acted on in well under
	// a second, and its debounce is kept short.
	o.infra.Browser = discovery.BrowserConfig{GoodbyeGrace: -1, Debounce: 100 * time.Millisecond, MaxDelay: time.Second,
		SignKey: o.verifyKey, HTTPClient: o.pass.Agents.FleetClient(discovery.ProbeBackoffLimit * discovery.DefaultProbeTimeout),
		ProbeClient: o.pass.Agents.ProbeClient}
	src, err := o.infra.Source(log)
	if err != nil {
		return err
	}
	cfg := adapt.Config{Source: src, Pass: pass, WatchFiles: pass.Planner().WatchFiles(), Timing: o.timing,
		ShutdownTimeout: o.shutdownTimeout, Logger: log, ControlSocket: filepath.Join(o.pass.StateDir, adapt.ControlSocketName)}
	if o.snapshot {
		cfg.Snapshotter, cfg.SnapshotSchedule = pass, o.snapshotSchedule
	}
	lead(&cfg, el, pass)
	return adapt.Serve(ctx, cfg, o.listen)
}
