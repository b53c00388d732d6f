package adapt

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

// historyLen is how many events and deploys the status keeps.
const historyLen = 50

// EventRecord is a discovery event as the loop received it.
type EventRecord struct {
	discovery.Event
	// Observed is when the loop received the event; DelayMs is
	// Observed-At (discovery's own delay).
	Observed time.Time `json:"observed"`
	DelayMs  int64     `json:"delayMs"`
}

func newEventRecord(e discovery.Event, now time.Time) EventRecord {
	r := EventRecord{Event: e, Observed: now}
	if !e.At.IsZero() {
		r.DelayMs = now.Sub(e.At).Milliseconds()
	}
	return r
}

// keepLast returns the last historyLen elements of s.
func keepLast[T any](s []T) []T {
	if len(s) > historyLen {
		return append([]T(nil), s[len(s)-historyLen:]...)
	}
	return s
}

// Move is a service placed on new targets by a deploy: it was on From and
// is on To.
type Move struct {
	Service string   `json:"service"`
	From    []string `json:"from"`
	To      []string `json:"to"`
}

// moves lists the services of next placed on a target they were not on in
// prev (services new in next excluded). A service only removed from a
// target (a stale copy on a returning machine) did not move.
func moves(prev, next model.Distribution) []Move {
	var out []Move
	for _, s := range next.Names() {
		old, ok := prev[s]
		if !ok || len(old) == 0 {
			continue
		}
		from, to := prev.Targets(s), next.Targets(s)
		for _, t := range to {
			if !slices.Contains(from, t) {
				out = append(out, Move{Service: s, From: from, To: to})
				break
			}
		}
	}
	return out
}

// timings sets the report's times: from the earliest discovery event
// behind it (received at or after since, the decider's earliest
// observation, or happened exactly then) and from the loop's observation.
func (l *Loop) timings(r *DeployReport, since time.Time) {
	l.mu.Lock()
	for _, e := range l.status.Events {
		if e.At.IsZero() || e.Observed.After(r.Started) {
			continue
		}
		if e.Observed.Before(since) && !e.At.Equal(since) {
			continue
		}
		if r.EventAt.IsZero() || e.At.Before(r.EventAt) {
			r.EventAt = e.At
		}
		if r.ObservedAt.IsZero() || e.Observed.Before(r.ObservedAt) {
			r.ObservedAt = e.Observed
		}
	}
	l.mu.Unlock()
	if r.ObservedAt.IsZero() {
		r.ObservedAt = since
	}
	from := r.ObservedAt
	if !r.EventAt.IsZero() {
		from = r.EventAt
	}
	r.DetectionMs = r.Started.Sub(from).Milliseconds()
	r.RedeployMs = r.Finished.Sub(from).Milliseconds()
	r.ObservedDetectionMs = r.Started.Sub(r.ObservedAt).Milliseconds()
	r.ObservedRedeployMs = r.Finished.Sub(r.ObservedAt).Milliseconds()
}

// Profiler is implemented by passes that can ask the targets' agents what
// they run (rollout.Pass with the agent deployer). When the Pass
// implements it, the loop asks at every resync and after every deploy,
// and the status shows each service's health and restart count.
type Profiler interface {
	// Profiles returns the profile of every target of infra that answers.
	Profiles(ctx context.Context, infra model.Infrastructure) map[string]*agentapi.Profile
}

// ServiceHealth is a service instance as its target's agent reports it.
type ServiceHealth struct {
	Service   string `json:"service"`
	Target    string `json:"target"`
	Container string `json:"container,omitempty"`
	Running   bool   `json:"running"`
	Healthy   bool   `json:"healthy"`
	Restarts  int    `json:"restarts"`
}

// pollHealth asks the agents for their profiles in the background (one
// poll at a time) and records the answer in the status.
func (l *Loop) pollHealth() {
	p, ok := l.cfg.Pass.(Profiler)
	if !ok || !l.polling.CompareAndSwap(false, true) {
		return
	}
	l.polls.Add(1)
	l.mu.Lock()
	infra := l.status.Infrastructure.Clone()
	l.mu.Unlock()
	go func() {
		defer l.polling.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.refreshHealth(ctx, p, infra)
	}()
}

// recordPolled records profiles, asked beside a resync's drain check
// (DrainProfiler) when polls polls had started, as a poll's answer for the
// targets the status shows; it leaves them out when a poll started since
// (its answer is the newer, or will be).
func (l *Loop) recordPolled(profiles map[string]*agentapi.Profile, polls uint64) {
	if !l.polling.CompareAndSwap(false, true) {
		return
	}
	defer l.polling.Store(false)
	if l.polls.Load() != polls {
		return
	}
	l.mu.Lock()
	used := l.status.Infrastructure
	l.mu.Unlock()
	maps.DeleteFunc(profiles, func(t string, _ *agentapi.Profile) bool { _, ok := used[t]; return !ok })
	l.recordHealth(profiles)
}

// refreshHealth asks the agents of infra for their profiles and records
// them (recordHealth).
func (l *Loop) refreshHealth(ctx context.Context, p Profiler, infra model.Infrastructure) {
	l.recordHealth(p.Profiles(ctx, infra))
}

// recordHealth records every service instance the profiles report in the
// status.
func (l *Loop) recordHealth(profiles map[string]*agentapi.Profile) {
	var out []ServiceHealth
	for target, prof := range profiles {
		if prof == nil {
			continue
		}
		for _, e := range prof.Services {
			out = append(out, ServiceHealth{Service: e.Service.Name, Target: target, Container: e.Container,
				Running: e.Running, Healthy: e.Healthy, Restarts: e.Restarts})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Target < out[j].Target
	})
	l.mu.Lock()
	l.status.Services = out
	l.mu.Unlock()
	l.log.Debug("agents' profiles", zap.Int("services", len(out)))
}

// Alert is a problem the status page shows in a red banner.
type Alert struct {
	// Kind is models, source, deploy, retry or snapshot.
	Kind    string     `json:"kind"`
	Message string     `json:"message"`
	At      *time.Time `json:"at,omitempty"`
}

// alerts lists the problems of s at now: a rejected model, a source
// error, a failed deploy not yet superseded (with its retry time), a
// snapshot older than twice the schedule's period.
func (l *Loop) alerts(s *Status, now time.Time) []Alert {
	var out []Alert
	if s.ModelsError != "" {
		out = append(out, Alert{Kind: "models", Message: "The models were rejected (the previous ones stay in use): " + s.ModelsError})
	}
	if s.SourceError != "" {
		out = append(out, Alert{Kind: "source", Message: "Discovery failed: " + s.SourceError})
	}
	switch {
	case s.RetryAt != nil:
		msg := "A deploy failed"
		if s.DeployError != "" {
			msg += ": " + s.DeployError
		}
		msg += fmt.Sprintf("; retrying at %s (in %s)", s.RetryAt.Format(time.RFC3339), s.RetryAt.Sub(now).Round(time.Second))
		out = append(out, Alert{Kind: "retry", Message: msg, At: s.RetryAt})
	case s.DeployError != "":
		out = append(out, Alert{Kind: "deploy", Message: "The last deploy failed: " + s.DeployError})
	}
	if l.schedule != nil {
		period := l.snapshotPeriod(s.Started)
		var stale []string
		for _, a := range s.Snapshots {
			if a.Stale {
				stale = append(stale, fmt.Sprintf("%s (%s)", a.Service, (time.Duration(a.AgeSeconds)*time.Second).Round(time.Second)))
			}
		}
		if len(stale) > 0 {
			out = append(out, Alert{Kind: "snapshot", Message: fmt.Sprintf("Newest complete snapshot older than twice the schedule (%s): %s",
				period, strings.Join(stale, ", "))})
		}
		last := s.LastSnapshot
		if last.IsZero() {
			last = s.Started
		}
		if !s.Started.IsZero() && now.Sub(last) > 2*period {
			msg := "No snapshot since " + last.Format(time.RFC3339)
			if s.LastSnapshot.IsZero() {
				msg = "No snapshot taken since the start (" + last.Format(time.RFC3339) + ")"
			}
			out = append(out, Alert{Kind: "snapshot", Message: fmt.Sprintf("%s: older than twice the schedule (%s)", msg, period)})
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// matches reports whether the deployed configuration answers the current
// input: the last successful deploy's key is the current one and nothing
// runs or waits for a retry.
func (d *Decider) matches() bool {
	return d.key != "" && d.key == d.deployedKey && !d.keyStale && !d.running && d.retryAt.IsZero()
}
