// Command dydisnix-reconstruct rebuilds the coordinator's manifest from the
// profile manifests the targets' agents keep and installs it as the newest
// generation, so that a redeploy after losing the coordinator's state
// deactivates what is obsolete instead of colliding with it.
//
//	dydisnix-reconstruct -i infrastructure.nix --agent-token-file F [--state-dir DIR]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/reconstruct"
)

const usage = `Usage: dydisnix-reconstruct -i INFRASTRUCTURE --agent-token-file FILE [options]

Queries the agent of every target of the infrastructure for its profile
manifest (what it runs), aggregates them into a manifest and installs it as
the newest generation of the coordinator's state (unless it equals the
newest one). Unreachable targets are reported and skipped.

Options:
  -i, --infrastructure FILE   infrastructure model (required; also positional)
  -a, --augment FILE          augmentation model (e.g. to add agentURL/secrets)
      --agent-token-file F    bearer token of the agents (required)
      --agent-ca-file F       PEM certificate(s) to trust for agents served over TLS
      --state-dir DIR         coordinator state directory (default $DYDISNIX_STATE_DIR,
                              else ~/.dydisnix)
      --target-property P     default target property holding the agent URL (agentURL)
      --timeout DUR           per-target query timeout (default 10s)
      --dry-run               print the reconstructed manifest, install nothing
  -o, --output FILE           also write the manifest to FILE
  -h, --help                  show this help

Exit status: 0 success, 1 error, 2 usage error.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var infraFile, augFile, tokenFile, stateDir, targetProp, out, caFile string
	var timeout time.Duration
	var dryRun, help bool
	fs := pflag.NewFlagSet("dydisnix-reconstruct", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVarP(&infraFile, "infrastructure", "i", "", "")
	fs.StringVarP(&augFile, "augment", "a", "", "")
	fs.StringVar(&tokenFile, "agent-token-file", "", "")
	fs.StringVar(&caFile, "agent-ca-file", "", "")
	fs.StringVar(&stateDir, "state-dir", "", "")
	fs.StringVar(&targetProp, "target-property", "", "")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "")
	fs.BoolVar(&dryRun, "dry-run", false, "")
	fs.StringVarP(&out, "output", "o", "", "")
	fs.BoolVarP(&help, "help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "dydisnix-reconstruct: %v\n\n%s", err, usage)
		return 2
	}
	if help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if infraFile == "" && fs.NArg() == 1 {
		infraFile = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dydisnix-reconstruct: unexpected arguments: %s\n\n%s", strings.Join(fs.Args(), " "), usage)
		return 2
	}
	if infraFile == "" || tokenFile == "" {
		fmt.Fprintf(stderr, "dydisnix-reconstruct: -i and --agent-token-file are required\n\n%s", usage)
		return 2
	}
	if stateDir == "" {
		stateDir = defaultStateDir()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := func() error {
		infra, err := model.LoadInfrastructure(infraFile)
		if err != nil {
			return err
		}
		if augFile != "" {
			aug, err := augment.Load(augFile, augment.Options{})
			if err != nil {
				return err
			}
			if infra, err = aug.Apply(ctx, infra); err != nil {
				return fmt.Errorf("augment %s: %w", augFile, err)
			}
		}
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("agent token file: %w", err)
		}
		hc, err := deployer.HTTPClientWithCA(caFile)
		if err != nil {
			return err
		}
		be := &deployer.AgentBackend{Token: strings.TrimSpace(string(tok)), HTTP: hc}
		res := reconstruct.FromTargets(ctx, infra, targetProp, reconstruct.Agents{Backend: be, Timeout: timeout})
		var bad []string
		for t := range res.Unreachable {
			bad = append(bad, t)
		}
		sort.Strings(bad)
		for _, t := range bad {
			fmt.Fprintf(stderr, "dydisnix-reconstruct: target %s skipped: %v\n", t, res.Unreachable[t])
		}
		man := res.Manifest
		fmt.Fprintf(stderr, "reconstructed %d service mappings on %d targets\n", len(man.Mappings), len(man.Targets()))
		if out != "" || dryRun {
			data, err := model.MarshalManifest(man)
			if err != nil {
				return err
			}
			if out != "" {
				if err := model.WriteFileAtomic(out, data, 0o644); err != nil {
					return err
				}
			} else {
				stdout.Write(data)
			}
		}
		if dryRun {
			return nil
		}
		store, err := deployer.OpenStore(stateDir, 0)
		if err != nil {
			return err
		}
		unlock, err := store.Lock()
		if err != nil {
			return err
		}
		defer unlock()
		latest, err := store.Latest()
		if err != nil {
			return err
		}
		gen, err := store.SaveManifest(man)
		if err != nil {
			return err
		}
		if latest != nil && latest.Generation == gen {
			fmt.Fprintf(stderr, "coordinator manifest unchanged (generation %d)\n", gen)
		} else {
			fmt.Fprintf(stderr, "installed as generation %d\n", gen)
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintln(stderr, "dydisnix-reconstruct:", err)
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
