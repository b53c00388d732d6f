package rollout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// serviceName is what the snapshot store accepts as a service's directory.
var serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// SharedState keeps the coordinator's record outside its state directory,
// so that another coordinator continues exactly where this one stopped
// (package ha keeps it in etcd, written only by the elected leader). The
// state directory and the ports and ids files stay the working copy: with
// Config.Shared set, every pass (Apply, ApplyManifest, Snapshot) first
// brings them up to date with Load and ends with Save, even when it failed
// (snapshots may have been stored), never on a dry run.
type SharedState interface {
	// Load returns the record saved last (nil when none was).
	Load(ctx context.Context) (*Record, error)
	// Save stores rec atomically in place of the previous one and sets
	// rec.Version; it fails when this coordinator may no longer write
	// (it no longer leads).
	Save(ctx context.Context, rec *Record) error
}

// Record is the coordinator's state as a SharedState keeps it: the
// deployed manifest, the generations index, the ports and ids files'
// contents and the snapshot index. The snapshots themselves stay in the
// state directories (and on the agents).
type Record struct {
	// Version identifies the saved record (etcd: its revision); 0 for a
	// record not saved yet.
	Version int64 `json:"-"`
	// Generations are the manifest generation numbers, ascending;
	// Manifest is the newest one's manifest (JSON, as the store writes it).
	Generations []int  `json:"generations"`
	Manifest    []byte `json:"-"`
	// Ports and IDs are the contents of the ports and ids files (nil: no
	// file).
	Ports []byte `json:"-"`
	IDs   []byte `json:"-"`
	// Snapshots holds, per service, its generations.json in the store.
	Snapshots map[string][]byte `json:"-"`
}

// digest identifies the record's content.
func (r *Record) digest() string {
	h := sha256.New()
	field := func(b []byte) { fmt.Fprintf(h, "%d:", len(b)); h.Write(b) }
	fmt.Fprintf(h, "%v;", r.Generations)
	field(r.Manifest)
	field(r.Ports)
	field(r.IDs)
	for _, s := range slices.Sorted(maps.Keys(r.Snapshots)) {
		field([]byte(s))
		field(r.Snapshots[s])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// export reads the record of the state directory and the ports and ids
// files.
func (p *Pass) export() (*Record, error) {
	rec := &Record{Snapshots: map[string][]byte{}}
	gens, err := p.store.Generations()
	if err != nil {
		return nil, err
	}
	rec.Generations = gens
	if len(gens) > 0 {
		if rec.Manifest, err = os.ReadFile(p.manifestFile(gens[len(gens)-1])); err != nil {
			return nil, fmt.Errorf("shared state: %w", err)
		}
	}
	if rec.Ports, err = readOptional(p.cfg.Models.Ports); err != nil {
		return nil, err
	}
	if rec.IDs, err = readOptional(p.cfg.Models.IDs); err != nil {
		return nil, err
	}
	svcs, err := p.store.SnapshotServices()
	if err != nil {
		return nil, fmt.Errorf("shared state: %w", err)
	}
	for _, s := range svcs {
		b, err := readOptional(filepath.Join(p.store.Dir, "snapshots", s, "generations.json"))
		if err != nil {
			return nil, err
		}
		if b != nil {
			rec.Snapshots[s] = b
		}
	}
	return rec, nil
}

func (p *Pass) manifestFile(gen int) string {
	return filepath.Join(p.store.Dir, "manifests", strconv.Itoa(gen)+".json")
}

func readOptional(file string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shared state: %w", err)
	}
	return b, nil
}

// importRecord makes the state directory and the ports and ids files
// hold rec: its newest manifest becomes the newest generation (a local
// generation above it, never committed to the shared record, is renamed
// N.json.deposed), the files get its contents (a file it lacks is
// removed), each service's snapshot index its generations.json. Only what
// differs is written.
func (p *Pass) importRecord(rec *Record) error {
	if n := len(rec.Generations); n > 0 {
		latest := rec.Generations[n-1]
		if _, err := model.UnmarshalManifest(rec.Manifest, "generation "+strconv.Itoa(latest)); err != nil {
			return fmt.Errorf("shared state: manifest of generation %d: %w", latest, err)
		}
		if err := writeIfChanged(p.manifestFile(latest), rec.Manifest, 0o600); err != nil {
			return err
		}
		local, err := p.store.Generations()
		if err != nil {
			return err
		}
		for _, g := range local {
			if g > latest {
				if err := os.Rename(p.manifestFile(g), p.manifestFile(g)+".deposed"); err != nil {
					return fmt.Errorf("shared state: %w", err)
				}
				p.cfg.Logger.Warn("shared state: a local generation the fleet never committed is set aside: " + p.manifestFile(g) + ".deposed")
			}
		}
	}
	for file, data := range map[string][]byte{p.cfg.Models.Ports: rec.Ports, p.cfg.Models.IDs: rec.IDs} {
		switch {
		case file == "":
		case data == nil:
			if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("shared state: %w", err)
			}
		default:
			if err := writeIfChanged(file, data, 0o644); err != nil {
				return err
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(rec.Snapshots)) {
		if !serviceName.MatchString(s) {
			return fmt.Errorf("shared state: bad service name %q in the snapshot index", s)
		}
		dir := filepath.Join(p.store.Dir, "snapshots", s)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("shared state: %w", err)
		}
		if err := writeIfChanged(filepath.Join(dir, "generations.json"), rec.Snapshots[s], 0o600); err != nil {
			return err
		}
	}
	return nil
}

// fetchSnapshots copies into the store the newest snapshot of every
// service of the snapshot index whose tarball the store lacks (the record
// holds the index, not the tarballs), from the first target of the newest
// manifest whose agent holds it: agents keep the snapshots they took and
// received. One that no agent holds is logged: a restore of it from the
// store would fail.
func (p *Pass) fetchSnapshots(ctx context.Context) {
	man, err := p.store.Latest()
	if err != nil || man == nil {
		return
	}
	svcs, err := p.store.SnapshotServices()
	if err != nil {
		return
	}
	for _, svc := range svcs {
		info, ok, err := p.store.LatestSnapshot(svc)
		if err != nil || !ok {
			continue
		}
		if _, err := os.Stat(p.store.SnapshotPath(svc, info.Digest)); err == nil {
			continue
		}
		from, err := p.fetchSnapshot(ctx, man, svc, info.Digest)
		if err != nil {
			p.cfg.Logger.Warn("shared state: the newest snapshot of a service is on no reachable agent: a restore of it from the store fails",
				zap.String("service", svc), zap.String("digest", info.Digest), zap.Error(err))
			continue
		}
		p.cfg.Logger.Info("shared state: snapshot fetched", zap.String("service", svc), zap.String("digest", info.Digest), zap.String("from", from))
	}
}

func (p *Pass) fetchSnapshot(ctx context.Context, man *model.Manifest, svc, digest string) (string, error) {
	var errs []error
	for _, t := range man.Infrastructure.Names() {
		c, err := p.agents.Client(t, man)
		if err != nil {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, p.cfg.ProbeTimeout)
		gens, err := c.Snapshots(lctx, svc)
		cancel()
		if err != nil || !slices.ContainsFunc(gens, func(g agentapi.SnapshotInfo) bool { return g.Digest == digest }) {
			continue
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(c.FetchSnapshot(ctx, svc, digest, pw)) }()
		_, err = p.store.PutSnapshot(svc, digest, pr)
		pr.CloseWithError(err)
		if err == nil {
			return t, nil
		}
		errs = append(errs, fmt.Errorf("target %s: %w", t, err))
	}
	if len(errs) == 0 {
		return "", errors.New("no reachable target holds it")
	}
	return "", errors.Join(errs...)
}

func writeIfChanged(file string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := model.WriteFileAtomic(file, data, mode); err != nil {
		return fmt.Errorf("shared state: %w", err)
	}
	return nil
}

// syncShared brings the working copy up to date with the shared record
// (Config.Shared) when it changed since this pass last loaded or saved it.
func (p *Pass) syncShared(ctx context.Context) error {
	if p.cfg.Shared == nil {
		return nil
	}
	rec, err := p.cfg.Shared.Load(ctx)
	if err != nil {
		return fmt.Errorf("shared state: load: %w", err)
	}
	if rec == nil || rec.Version == p.sharedVersion {
		return nil
	}
	if err := p.importRecord(rec); err != nil {
		return err
	}
	p.fetchSnapshots(ctx)
	p.sharedVersion, p.sharedDigest = rec.Version, rec.digest()
	return nil
}

// saveShared saves the working copy to the shared record.
func (p *Pass) saveShared(ctx context.Context) error {
	if p.cfg.Shared == nil {
		return nil
	}
	rec, err := p.export()
	if err != nil {
		return err
	}
	d := rec.digest()
	if d == p.sharedDigest {
		return nil // nothing changed since loaded or saved
	}
	// A pass cancelled (its coordinator stopping, or deposed) still
	// records what it did; a deposed leader's save is refused by the guard.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.cfg.Shared.Save(sctx, rec); err != nil {
		return fmt.Errorf("shared state: save: %w", err)
	}
	p.sharedVersion, p.sharedDigest = rec.Version, d
	return nil
}
