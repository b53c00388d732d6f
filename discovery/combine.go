package discovery

import (
	"context"
	"errors"
	"sort"

	"github.com/dydisnix/dydisnix/model"
)

// CombineRule is the combined source's rule for a hostname seen by more
// than one source, as documented in docs/registry.md.
const CombineRule = "the source named first keeps the hostname"

// CombinedSource merges several sources (the etcd registry for remote
// sites plus mDNS on the local link) into one. The rule for a hostname
// seen by more than one: the target is in the model while any source has
// it; its content is the one of the source listed first (the registry:
// reached over authenticated TLS, where mDNS is open to the link); a
// different content elsewhere is reported as a conflict. An event keeps
// the reason its source gave, so a removal is graceful when the last
// source to lose the target saw a goodbye.
type CombinedSource struct {
	// Sources in order of precedence.
	Sources []Source
	// Names name the sources in conflicts ("registry", "mdns").
	Names []string
}

// Combine returns the combined source of srcs, named by names (same
// length), the first taking precedence.
func Combine(srcs []Source, names []string) (*CombinedSource, error) {
	if len(srcs) == 0 || len(srcs) != len(names) {
		return nil, errors.New("combine: one name per source, at least one source")
	}
	return &CombinedSource{Sources: srcs, Names: names}, nil
}

type taggedSnapshot struct {
	i    int
	snap Snapshot
}

// Run implements Source: the first snapshot once every source has sent
// its first, then one per source snapshot that changes the merged model.
// A source that fails ends the whole.
func (c *CombinedSource) Run(ctx context.Context, out chan<- Snapshot) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := len(c.Sources)
	in := make(chan taggedSnapshot)
	errc := make(chan error, n)
	for i, src := range c.Sources {
		ch := make(chan Snapshot)
		go func() { errc <- src.Run(ctx, ch) }()
		go func() {
			for {
				select {
				case s := <-ch:
					select {
					case in <- taggedSnapshot{i, s}:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	latest := make([]*Snapshot, n)
	var prev model.Infrastructure
	started := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			// A source that ends without an error (its context is
			// ours) is done: keep its last view.
		case t := <-in:
			s := t.snap
			latest[t.i] = &s
			ready := true
			for _, l := range latest {
				ready = ready && l != nil
			}
			if !ready {
				continue
			}
			merged, conflicts := c.merge(latest)
			evs := Diff(prev, merged, "", s.At)
			for i, e := range evs {
				evs[i].Reason = reasonOf(e, s.Events)
			}
			for _, e := range s.Events {
				if e.Kind == EventConflict {
					evs = append(evs, e)
				}
			}
			if started && len(evs) == 0 {
				continue
			}
			if !started {
				evs = Diff(nil, merged, "", s.At)
				for i, e := range evs {
					evs[i].Reason = reasonOf(e, allEvents(latest))
				}
			}
			started, prev = true, merged
			select {
			case out <- Snapshot{Infrastructure: merged.Clone(), Events: evs, At: s.At, Conflicts: conflicts}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func allEvents(snaps []*Snapshot) []Event {
	var evs []Event
	for _, s := range snaps {
		evs = append(evs, s.Events...)
	}
	return evs
}

// reasonOf is the reason the source gave for e's kind on e's target (the
// last such event), else a generic one.
func reasonOf(e Event, from []Event) string {
	reason := ""
	for _, f := range from {
		if f.Target == e.Target && (f.Kind == e.Kind || (e.Kind == EventChanged && f.Kind != EventConflict)) {
			reason = f.Reason
		}
	}
	if reason != "" {
		return reason
	}
	switch e.Kind {
	case EventAdded:
		return ReasonAnnounced
	case EventRemoved:
		return ReasonNoAnswer
	}
	return ReasonTXTChanged
}

// merge applies the combination rule to the sources' latest snapshots.
func (c *CombinedSource) merge(latest []*Snapshot) (model.Infrastructure, []Conflict) {
	merged := model.Infrastructure{}
	from := map[string]int{}
	var conflicts []Conflict
	for i, s := range latest {
		conflicts = append(conflicts, s.Conflicts...)
		names := make([]string, 0, len(s.Infrastructure))
		for name := range s.Infrastructure {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			t := s.Infrastructure[name]
			if j, ok := from[name]; ok {
				if !TargetEqual(withoutAgentURL(merged[name]), withoutAgentURL(t)) {
					conflicts = append(conflicts, Conflict{Hostname: name,
						Kept:    Claim{Instance: c.Names[j] + ":" + name, Endpoint: agentURL(merged[name])},
						Ignored: Claim{Instance: c.Names[i] + ":" + name, Endpoint: agentURL(t)}, Reason: CombineRule})
				}
				continue
			}
			merged[name], from[name] = t, i
		}
	}
	return merged, conflicts
}

func agentURL(t *model.Target) string {
	s, _ := t.Properties[AgentURLProperty].(string)
	return s
}

// withoutAgentURL compares targets on their content: the endpoint a
// source saw is not part of it.
func withoutAgentURL(t *model.Target) *model.Target {
	c := t.Clone()
	delete(c.Properties, AgentURLProperty)
	return c
}
