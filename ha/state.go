package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dydisnix/dydisnix/rollout"
)

// State keeps the coordinators' record in etcd (rollout.SharedState):
//
//	Prefix/state/meta               the generations index, the writer and when
//	Prefix/state/manifest           the newest generation's manifest
//	Prefix/state/ports, …/ids       the ports and ids files' contents
//	Prefix/state/snapshots          the snapshot index: per service, its generations.json
//
// Only the leader writes it: every Save is one transaction guarded by the
// leader's election key, so a deposed leader's save fails as a whole.
type State struct {
	e *Elector
}

// State returns the elector's shared record.
func (e *Elector) State() *State { return &State{e: e} }

var _ rollout.SharedState = (*State)(nil)

type meta struct {
	Generations []int     `json:"generations"`
	Writer      string    `json:"writer"`
	Revision    int64     `json:"revision"`
	At          time.Time `json:"at"`
}

func (s *State) key(parts ...string) string {
	return s.e.cfg.Prefix + "/state/" + strings.Join(parts, "/")
}

// Load reads the record (nil when none was saved); its Version is the
// revision of its last save.
func (s *State) Load(ctx context.Context) (*rollout.Record, error) {
	resp, err := s.e.cfg.Client.Get(ctx, s.key(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	rec := &rollout.Record{Snapshots: map[string][]byte{}}
	found := false
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case k == s.key("meta"):
			var m meta
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				return nil, fmt.Errorf("etcd %s: %w", k, err)
			}
			rec.Generations, rec.Version, found = m.Generations, kv.ModRevision, true
		case k == s.key("manifest"):
			rec.Manifest = kv.Value
		case k == s.key("ports"):
			rec.Ports = kv.Value
		case k == s.key("ids"):
			rec.IDs = kv.Value
		case k == s.key("snapshots"):
			var idx map[string]string
			if err := json.Unmarshal(kv.Value, &idx); err != nil {
				return nil, fmt.Errorf("etcd %s: %w", k, err)
			}
			for svc, v := range idx {
				rec.Snapshots[svc] = []byte(v)
			}
		}
	}
	if !found {
		return nil, nil
	}
	if len(rec.Generations) > 0 && rec.Manifest == nil {
		return nil, fmt.Errorf("etcd %s: generations %v but no manifest", s.key("meta"), rec.Generations)
	}
	return rec, nil
}

// Save replaces the record in one transaction that succeeds only while this
// coordinator's election key is the one of its running term.
func (s *State) Save(ctx context.Context, rec *rollout.Record) error {
	key, rev, err := s.e.guard()
	if err != nil {
		return err
	}
	cli := s.e.cfg.Client
	m, _ := json.Marshal(meta{Generations: rec.Generations, Writer: s.e.cfg.Name, Revision: rev, At: time.Now().UTC()})
	ops := []clientv3.Op{clientv3.OpPut(s.key("meta"), string(m))}
	for name, v := range map[string][]byte{"manifest": rec.Manifest, "ports": rec.Ports, "ids": rec.IDs} {
		if v == nil {
			ops = append(ops, clientv3.OpDelete(s.key(name)))
		} else {
			ops = append(ops, clientv3.OpPut(s.key(name), string(v)))
		}
	}
	idx := map[string]string{}
	for svc, v := range rec.Snapshots {
		idx[svc] = string(v)
	}
	sn, _ := json.Marshal(idx)
	ops = append(ops, clientv3.OpPut(s.key("snapshots"), string(sn)))
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: its election key %s is gone (deposed)", ErrNotLeader, key)
	}
	rec.Version = resp.Header.Revision
	return nil
}
