// Command dydisnix-snapshot snapshots the state of every stateful service
// of the last deployment into the coordinator's snapshot store, so that a
// service whose machine crashes can be restored elsewhere.
//
//	dydisnix-snapshot --agent-token-file F [--state-dir DIR] [--keep N]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
)

const usage = `Usage: dydisnix-snapshot --agent-token-file FILE [options] [MANIFEST]

Snapshots every stateful (deployState) service of the last deployment (or of
MANIFEST) on its target and copies the snapshots into the coordinator's
snapshot store, keeping --keep generations per service. A later deployment
that finds a service's machine unreachable restores the newest snapshot
on the service's new machine.

Options:
      --agent-token-file F   bearer token of the agents (required)
      --agent-ca-file F      PEM certificate(s) to trust for agents served over TLS
      --state-dir DIR        coordinator state directory (default $DYDISNIX_STATE_DIR,
                             else ~/.dydisnix)
      --keep N               snapshot generations kept per service (default 3)
      --service NAME         only this service (repeatable)
  -m, --max-concurrent N     snapshots taken in parallel (default 4)
      --format FMT           text (default) or json: the list of snapshots taken
  -o, --output FILE          write that list to FILE
  -h, --help                 show this help

Exit status: 0 success, 1 error (some snapshot failed), 2 usage error.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var tokenFile, stateDir, format, out, caFile string
	var keep, parallel int
	var only []string
	var help bool
	fs := pflag.NewFlagSet("dydisnix-snapshot", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&tokenFile, "agent-token-file", "", "")
	fs.StringVar(&caFile, "agent-ca-file", "", "")
	fs.StringVar(&stateDir, "state-dir", "", "")
	fs.IntVar(&keep, "keep", 3, "")
	fs.StringArrayVar(&only, "service", nil, "")
	fs.IntVarP(&parallel, "max-concurrent", "m", 4, "")
	fs.StringVar(&format, "format", "text", "")
	fs.StringVarP(&out, "output", "o", "", "")
	fs.BoolVarP(&help, "help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-snapshot: %v\n\n%s", err, usage)
		return 2
	}
	if help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch {
	case tokenFile == "":
		fmt.Fprintf(stderr, "dydisnix-snapshot: --agent-token-file is required\n\n%s", usage)
		return 2
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "dydisnix-snapshot: at most one MANIFEST\n\n%s", usage)
		return 2
	case format != "text" && format != "json":
		fmt.Fprintf(stderr, "dydisnix-snapshot: --format: expected text or json\n\n%s", usage)
		return 2
	case keep < 1 || parallel < 1:
		fmt.Fprintf(stderr, "dydisnix-snapshot: --keep and -m must be positive\n\n%s", usage)
		return 2
	}
	if stateDir == "" {
		stateDir = defaultStateDir()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := func() error {
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("agent token file: %w", err)
		}
		store, err := deployer.OpenStore(stateDir, keep)
		if err != nil {
			return err
		}
		var man *model.Manifest
		if fs.NArg() == 1 {
			man, err = model.ReadManifest(fs.Arg(0))
		} else {
			man, err = store.Latest()
			if err == nil && man == nil {
				err = fmt.Errorf("%s holds no deployment: nothing to snapshot", stateDir)
			}
		}
		if err != nil {
			return err
		}
		if len(only) > 0 {
			keepSvc := map[string]bool{}
			for _, s := range only {
				keepSvc[s] = true
			}
			var sm []model.ServiceMapping
			for _, m := range man.Snapshots {
				if keepSvc[man.Services[m.Service].Name] {
					sm = append(sm, m)
				}
			}
			c := *man
			c.Snapshots = sm
			man = &c
		}
		hc, err := deployer.HTTPClientWithCA(caFile)
		if err != nil {
			return err
		}
		be := &deployer.AgentBackend{Token: strings.TrimSpace(string(tok)), Parallel: parallel, HTTP: hc}
		infos, snapErr := be.SnapshotAll(ctx, man, store, func(s string) { fmt.Fprintln(stderr, s) })
		var data []byte
		if format == "json" {
			data, _ = json.MarshalIndent(infos, "", "  ")
			data = append(data, '\n')
		} else {
			var b strings.Builder
			for _, i := range infos {
				fmt.Fprintf(&b, "%s %s generation %d (%d bytes)\n", i.Service, i.Digest, i.Generation, i.Size)
			}
			data = []byte(b.String())
		}
		if out != "" {
			if err := model.WriteFileAtomic(out, data, 0o644); err != nil {
				return err
			}
		} else {
			stdout.Write(data)
		}
		return snapErr
	}()
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-snapshot:", err)
		return 1
	}
	return 0
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
