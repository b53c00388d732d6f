package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/internal/clock"
	"github.com/dydisnix/dydisnix/model"
)

// GeninfraEnv names the infrastructure generator command, as in the
// original Dynamic Disnix.
const GeninfraEnv = "DYDISNIX_GENINFRA"

// DefaultCommandInterval is how often a generator command is run: the
// original self-adapt loop's default --interval of 5 seconds.
const DefaultCommandInterval = 5 * time.Second

// Diff compares two infrastructures and returns added, removed and changed
// events (sorted by target name) stamped with now and reason for changes.
func Diff(old, cur model.Infrastructure, reason string, now time.Time) []Event {
	var evs []Event
	names := map[string]bool{}
	for n := range old {
		names[n] = true
	}
	for n := range cur {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		o, c := old[n], cur[n]
		switch {
		case o == nil:
			evs = append(evs, Event{Kind: EventAdded, Target: n, Reason: reason, At: now})
		case c == nil:
			evs = append(evs, Event{Kind: EventRemoved, Target: n, Reason: reason, At: now})
		case !TargetEqual(o, c):
			evs = append(evs, Event{Kind: EventChanged, Target: n, Reason: reason, At: now})
		}
	}
	return evs
}

// CommandSource runs an infrastructure generator (a shell command whose
// stdout is a JSON or Nix infrastructure model, such as
// disnix-capture-infra or dydisnix-geninfra-mdns) every Interval and emits
// a snapshot for the first result and for every result that differs.
type CommandSource struct {
	// Command is run with sh -c.
	Command  string
	Interval time.Duration
	Clock    clock.Clock
	Logger   *zap.Logger
	// FailAfter makes Run return an error after this many consecutive
	// failed runs (0: keep trying and only log).
	FailAfter int
}

// NewCommandSource returns a source for command; an empty command takes
// $DYDISNIX_GENINFRA. interval <= 0 means DefaultCommandInterval.
func NewCommandSource(command string, interval time.Duration) (*CommandSource, error) {
	if command == "" {
		command = os.Getenv(GeninfraEnv)
	}
	if strings.TrimSpace(command) == "" {
		return nil, errors.New("an infrastructure generator must be specified (--geninfra CMD or $" + GeninfraEnv + ")")
	}
	if interval <= 0 {
		interval = DefaultCommandInterval
	}
	return &CommandSource{Command: command, Interval: interval}, nil
}

// Generate runs the command once and reads its output.
func (s *CommandSource) Generate(ctx context.Context) (model.Infrastructure, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", s.Command)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("infrastructure generator %q: %w: %s", s.Command, err, strings.TrimSpace(stderr.String()))
	}
	v, err := EvalNixOrJSON(ctx, stdout.Bytes(), fmt.Sprintf("infrastructure generator %q", s.Command))
	if err != nil {
		return nil, err
	}
	return model.InfrastructureFromValue(v, fmt.Sprintf("output of %q", s.Command))
}

// Run implements Source.
func (s *CommandSource) Run(ctx context.Context, out chan<- Snapshot) error {
	clk := clock.OrReal(s.Clock)
	log := s.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var prev model.Infrastructure
	first := true
	failures := 0
	t := clk.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		infra, err := s.Generate(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := clk.Now()
		if err != nil {
			failures++
			log.Warn("infrastructure generator failed; keeping the previous model", zap.Error(err))
			if s.FailAfter > 0 && failures >= s.FailAfter {
				return err
			}
			t.Reset(s.Interval)
			continue
		}
		failures = 0
		evs := Diff(prev, infra, ReasonGenerated, now)
		if first || len(evs) > 0 {
			first = false
			prev = infra
			select {
			case out <- Snapshot{Infrastructure: infra.Clone(), Events: evs, At: now}:
			case <-ctx.Done():
				return nil
			}
		}
		t.Reset(s.Interval)
	}
}

// FileSource follows a static infrastructure model file (.json, .yaml,
// .nix): a snapshot at start and one whenever the file's content changes
// (fsnotify on its directory, so atomic renames are seen). A file that
// cannot be read keeps the previous model and logs a warning.
type FileSource struct {
	Path   string
	Clock  clock.Clock
	Logger *zap.Logger
	// Debounce coalesces the events of one save (default 100 ms).
	Debounce time.Duration
}

// NewFileSource returns a source for path.
func NewFileSource(path string) *FileSource { return &FileSource{Path: path} }

func (s *FileSource) load(ctx context.Context) (model.Infrastructure, error) {
	return model.LoadInfrastructureContext(ctx, s.Path, model.NixOptions{})
}

// Run implements Source. The first load must succeed.
func (s *FileSource) Run(ctx context.Context, out chan<- Snapshot) error {
	clk := clock.OrReal(s.Clock)
	log := s.Logger
	if log == nil {
		log = zap.NewNop()
	}
	deb := s.Debounce
	if deb <= 0 {
		deb = 100 * time.Millisecond
	}
	fw, err := NewFileWatcher(s.Path) // before the first load: no change is missed
	if err != nil {
		return err
	}
	defer fw.Close()
	prev, err := s.load(ctx)
	if err != nil {
		return err
	}
	select {
	case out <- Snapshot{Infrastructure: prev.Clone(), At: clk.Now()}:
	case <-ctx.Done():
		return nil
	}
	return fw.runDebounced(ctx, clk, deb, func(ctx context.Context) {
		infra, err := s.load(ctx)
		if err != nil {
			log.Warn("keeping the previous infrastructure", zap.Error(err))
			return
		}
		now := clk.Now()
		evs := Diff(prev, infra, ReasonFile, now)
		if len(evs) == 0 {
			return
		}
		prev = infra
		select {
		case out <- Snapshot{Infrastructure: infra.Clone(), Events: evs, At: now}:
		case <-ctx.Done():
		}
	})
}
