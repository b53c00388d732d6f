package adapt

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dydisnix/dydisnix/adapt/visual"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
)

// Status is the loop's state as served on /status. The infrastructure is
// the discovered one, never the augmented one (augmentation adds secrets).
type Status struct {
	Started time.Time `json:"started"`
	// Summary counts the targets and services; /status serves it, and
	// the per-target and per-service detail only on request.
	Summary StatusSummary `json:"summary"`
	// Phase is starting, idle, deploying, retrying, paused, standby
	// (another coordinator leads), stopping or stopped.
	Phase string `json:"phase"`
	// Leader says who leads the coordinators and since when (only with
	// Config.Leadership: several coordinators).
	Leader *Leader `json:"leader,omitempty"`
	// Infrastructure holds the targets in use (not augmented).
	Infrastructure model.Infrastructure `json:"infrastructure"`
	// Discovered lists every target discovery currently sees.
	Discovered []string `json:"discovered"`
	// Targets is the membership table (state, hysteresis deadlines).
	Targets      []MemberStatus     `json:"targets"`
	Distribution model.Distribution `json:"distribution"`
	LastEvent    *discovery.Event   `json:"lastEvent"`
	LastDeploy   *DeployReport      `json:"lastDeploy"`
	LastCheck    time.Time          `json:"lastCheck,omitempty"`
	LastSnapshot time.Time          `json:"lastSnapshot,omitempty"`
	// Snapshots gives, per stateful service of the deployed generation,
	// the age of its newest complete snapshot (with a Snapshotter that
	// tells, see SnapshotTimer).
	Snapshots   []SnapshotAge `json:"snapshots,omitempty"`
	RetryAt     *time.Time    `json:"retryAt,omitempty"`
	ModelsError string        `json:"modelsError,omitempty"`
	SourceError string        `json:"sourceError,omitempty"`
	// DeployError is the error of the last deploy when it failed; it is
	// cleared by a later success or a check finding the system matching.
	DeployError string `json:"deployError,omitempty"`
	// Draining lists the targets whose agents drain.
	Draining []string `json:"draining,omitempty"`
	// Conflicts lists the instances whose claim of a hostname discovery
	// ignores, another instance holding it (see discovery.Conflict).
	Conflicts []discovery.Conflict `json:"conflicts,omitempty"`
	// Events and Deploys are the last 50 discovery events and deploys,
	// oldest first.
	Events  []EventRecord  `json:"events"`
	Deploys []DeployReport `json:"deploys"`
	// Services is what the agents report of every service instance (only
	// with a Pass implementing Profiler).
	Services []ServiceHealth `json:"services,omitempty"`
	// Alerts lists the problems the page shows in red banners.
	Alerts []Alert `json:"alerts,omitempty"`
	// Running is the step of the running deploy started last and still
	// running (nil when no step runs).
	Running *RunningStep `json:"running,omitempty"`
}

// StatusSummary is the small part of the status: counts instead of the
// per-target and per-service lists.
type StatusSummary struct {
	// Targets counts the membership table by state.
	Targets map[MemberState]int `json:"targets"`
	// InUse counts the targets given to the policy, Discovered those
	// discovery sees, Draining those whose agents drain.
	InUse      int `json:"inUse"`
	Discovered int `json:"discovered"`
	Draining   int `json:"draining"`
	// Services counts the services of the deployed distribution,
	// Instances their instances the agents report, Unhealthy those not
	// running or not healthy.
	Services  int `json:"services"`
	Instances int `json:"instances"`
	Unhealthy int `json:"unhealthy"`
	// StaleSnapshots counts the stateful services whose newest snapshot
	// is older than twice the schedule's period.
	StaleSnapshots int `json:"staleSnapshots"`
	// Conflicts counts the ignored claims of a hostname.
	Conflicts int `json:"conflicts"`
}

func summarize(s *Status) StatusSummary {
	sum := StatusSummary{Targets: map[MemberState]int{}, InUse: len(s.Infrastructure), Discovered: len(s.Discovered),
		Draining: len(s.Draining), Services: len(s.Distribution), Instances: len(s.Services), Conflicts: len(s.Conflicts)}
	for _, m := range s.Targets {
		sum.Targets[m.State]++
	}
	for _, h := range s.Services {
		if !h.Running || !h.Healthy {
			sum.Unhealthy++
		}
	}
	for _, a := range s.Snapshots {
		if a.Stale {
			sum.StaleSnapshots++
		}
	}
	return sum
}

// The detail sections of /status (?detail=a,b) and the fields each adds
// to the summary.
var statusSections = map[string][]string{
	"targets":  {"infrastructure", "discovered", "targets", "draining"},
	"services": {"distribution", "services", "snapshots"},
	"history":  {"events", "deploys"},
}

// statusSectionDrop empties the fields of each detail section (st is a
// copy: the slices and maps themselves are left alone).
var statusSectionDrop = map[string]func(st *Status){
	"targets":  func(st *Status) { st.Infrastructure, st.Discovered, st.Targets, st.Draining = nil, nil, nil, nil },
	"services": func(st *Status) { st.Distribution, st.Services, st.Snapshots = nil, nil, nil },
	"history":  func(st *Status) { st.Events, st.Deploys = nil, nil },
}

// StatusDetailAll asks for every detail section of /status.
const StatusDetailAll = "all"

// statusJSON renders the status for /status: the summary (phase, errors,
// alerts, the last event and deploy, counts) and the detail sections
// detail names (comma-separated: targets, services, history or all); the
// last deploy's distribution and plan come with services.
func statusJSON(st Status, detail string) ([]byte, error) {
	want := map[string]bool{}
	for _, d := range strings.Split(detail, ",") {
		d = strings.TrimSpace(d)
		switch {
		case d == "":
		case d == StatusDetailAll:
			for k := range statusSections {
				want[k] = true
			}
		case statusSections[d] != nil:
			want[d] = true
		default:
			return nil, fmt.Errorf("detail %q: expected a comma-separated list of targets, services, history or all", d)
		}
	}
	if !want["services"] && st.LastDeploy != nil {
		r := *st.LastDeploy
		r.Distribution, r.Plan = nil, nil
		st.LastDeploy = &r
	}
	// Sections not asked for are not rendered at all (at 1000 services
	// on 100 targets they are most of the page), then their keys removed.
	for sec, drop := range statusSectionDrop {
		if !want[sec] {
			drop(&st)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for sec, keys := range statusSections {
		if !want[sec] {
			for _, k := range keys {
				delete(m, k)
			}
		}
	}
	return json.MarshalIndent(m, "", "  ")
}

// serveStatus answers GET /status (?detail=…, see statusJSON).
func (l *Loop) serveStatus(w http.ResponseWriter, r *http.Request) {
	b, err := statusJSON(l.Status(), r.URL.Query().Get("detail"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// SnapshotAge is the age of a stateful service's newest complete
// snapshot.
type SnapshotAge struct {
	Service string `json:"service"`
	// Taken is when it was taken; nil when the store has none.
	Taken *time.Time `json:"taken,omitempty"`
	// AgeSeconds is the time since Taken (since the loop started when
	// there is none).
	AgeSeconds float64 `json:"ageSeconds"`
	// Stale is set when it is older than twice the schedule's period (or
	// missing that long after the start).
	Stale bool `json:"stale,omitempty"`
}

// Status returns a copy of the loop's status.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	now := l.clock.Now()
	s.Targets = append([]MemberStatus(nil), s.Targets...)
	s.Events = append([]EventRecord(nil), s.Events...)
	s.Deploys = append([]DeployReport(nil), s.Deploys...)
	s.Conflicts = append([]discovery.Conflict(nil), s.Conflicts...)
	s.Snapshots = l.snapshotAges(s.Started, now)
	s.Summary = summarize(&s)
	s.Alerts = l.alerts(&s, now)
	return s
}

// snapshotPeriod is the schedule's period (0: no schedule).
func (l *Loop) snapshotPeriod(started time.Time) time.Duration {
	if l.schedule == nil {
		return 0
	}
	first := l.schedule.Next(started)
	return l.schedule.Next(first).Sub(first)
}

// snapshotAges lists the age of every stateful service's newest snapshot
// at now, sorted by service (l.mu held).
func (l *Loop) snapshotAges(started, now time.Time) []SnapshotAge {
	period := l.snapshotPeriod(started)
	out := make([]SnapshotAge, 0, len(l.snapTimes))
	for _, svc := range slices.Sorted(maps.Keys(l.snapTimes)) {
		a := SnapshotAge{Service: svc}
		from := started
		if t := l.snapTimes[svc]; !t.IsZero() {
			a.Taken, from = &t, t
		}
		age := now.Sub(from)
		a.AgeSeconds = age.Seconds()
		a.Stale = period > 0 && age > 2*period
		out = append(out, a)
	}
	return out
}

// Diagram returns the picture of the current deployment: the targets in
// use and those still holding services of the deployed distribution
// (down, leaving, draining or in probation, drawn as such), the services
// the last deploy moved and those their agents report unhealthy marked.
func (l *Loop) Diagram() *visual.Diagram {
	l.mu.Lock()
	svcs := l.services
	st := l.status
	l.mu.Unlock()
	holds := map[string]bool{}
	for _, s := range st.Distribution.Names() {
		for _, t := range st.Distribution.Targets(s) {
			holds[t] = true
		}
	}
	states := map[string]string{}
	var names []string
	for _, m := range st.Targets {
		if m.State == MemberDown && !holds[m.Target] {
			continue
		}
		names = append(names, m.Target)
		states[m.Target] = string(m.State)
		if slices.Contains(st.Draining, m.Target) {
			states[m.Target] = "draining"
		}
	}
	if svcs == nil {
		svcs = model.Services{}
	}
	d := visual.Build(svcs, names, st.Distribution, states)
	d.Marks = map[visual.Node]string{}
	if r := st.LastDeploy; r != nil && r.Result == "success" {
		for _, m := range r.Moves {
			for _, t := range m.To {
				if !slices.Contains(m.From, t) {
					d.Marks[visual.Node{Service: m.Service, Target: t}] = visual.MarkMoved + "from " + strings.Join(m.From, ", ")
				}
			}
		}
	}
	for _, h := range st.Services {
		if !h.Running || !h.Healthy {
			d.Marks[visual.Node{Service: h.Service, Target: h.Target}] = visual.MarkUnhealthy
		}
	}
	return d
}

// svg renders the diagram, with Graphviz's dot when installed; the
// picture of an unchanged diagram is reused.
func (l *Loop) svg(r *http.Request) string {
	d := l.Diagram()
	key := d.DOT()
	l.svgMu.Lock()
	defer l.svgMu.Unlock()
	if key != l.svgKey {
		l.svgKey, l.svgOut = key, d.Render(r.Context())
	}
	return l.svgOut
}

// Handler serves /healthz, /status (a summary; ?detail=targets,services,
// history or all adds the lists), /metrics, /explain (the policy's
// explanation of the deployed distribution), /diagram.svg, the status
// page / and its live part /live (the page fetches it every second).
func (l *Loop) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := l.Status()
		if st.Phase == "stopped" {
			http.Error(w, "stopped", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", l.serveStatus)
	mux.Handle("GET /metrics", promhttp.HandlerFor(l.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		explain := l.explain
		l.mu.Unlock()
		var ex any
		if explain != nil {
			select {
			case l.explaining <- struct{}{}:
				defer func() { <-l.explaining }()
			case <-r.Context().Done():
				return // the client left while another explanation was made
			}
			var err error
			if ex, err = explain(r.Context()); err != nil {
				http.Error(w, "explain: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"explanation": ex})
	})
	mux.HandleFunc("GET /diagram.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, l.svg(r))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { l.render(w, r, "page") })
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) { l.render(w, r, "live") })
	return model.RedactHandler(mux) // no secret in any answer (model.Redact)
}

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("15:04:05.000")
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"join": strings.Join,
	"seconds": func(f float64) string {
		return (time.Duration(f) * time.Second).String()
	},
	"newestFirst": func(v any) any {
		switch s := v.(type) {
		case []EventRecord:
			s = slices.Clone(s)
			slices.Reverse(s)
			return s
		case []DeployReport:
			s = slices.Clone(s)
			slices.Reverse(s)
			return s
		}
		return v
	},
}).ParseFS(pageFS, "page.html"))

// pageData is what the page's templates render.
type pageData struct {
	Status
	Now time.Time
	// SVG is the picture, generated by the visual package (names escaped)
	// or by Graphviz's dot.
	SVG template.HTML
}

// render executes the page template name ("page" or its live part
// "live") on the current status.
func (l *Loop) render(w http.ResponseWriter, r *http.Request, name string) {
	data := pageData{Status: l.Status(), Now: l.clock.Now(), SVG: template.HTML(l.svg(r))} // #nosec G203: generated SVG, names escaped
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}
