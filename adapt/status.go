package adapt

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
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
	// Phase is starting, idle, deploying, retrying, stopping or stopped.
	Phase string `json:"phase"`
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
	RetryAt      *time.Time         `json:"retryAt,omitempty"`
	ModelsError  string             `json:"modelsError,omitempty"`
	SourceError  string             `json:"sourceError,omitempty"`
	// Running is the step of the running deploy started last and still
	// running (nil when no step runs).
	Running *RunningStep `json:"running,omitempty"`
}

// Status returns a copy of the loop's status.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	s.Targets = append([]MemberStatus(nil), s.Targets...)
	return s
}

// Diagram returns the picture of the current deployment.
func (l *Loop) Diagram() *visual.Diagram {
	l.mu.Lock()
	svcs := l.services
	st := l.status
	l.mu.Unlock()
	states := map[string]string{}
	var names []string
	for _, m := range st.Targets {
		if m.State == MemberDown {
			continue
		}
		names = append(names, m.Target)
		states[m.Target] = string(m.State)
	}
	if svcs == nil {
		svcs = model.Services{}
	}
	return visual.Build(svcs, names, st.Distribution, states)
}

// Handler serves /healthz, /status, /metrics, /explain (the policy's
// explanation of the deployed distribution), /diagram.svg and the status
// page /.
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
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(l.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(l.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /explain", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		ex := l.explanation
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"explanation": ex})
	})
	mux.HandleFunc("GET /diagram.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, l.Diagram().SVG())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, l.page())
	})
	return mux
}

// page renders the self-refreshing HTML status page.
func (l *Loop) page() string {
	st := l.Status()
	svg := l.Diagram().SVG()
	e := html.EscapeString
	last := "none yet"
	if d := st.LastDeploy; d != nil {
		last = fmt.Sprintf("#%d %s at %s (detection %d ms, redeploy %d ms, %d steps)",
			d.Seq, d.Result, d.Finished.Format(time.RFC3339), d.DetectionMs, d.RedeployMs, len(d.Plan))
		if d.Error != "" {
			last += ": " + d.Error
		}
	}
	ev := "none yet"
	if x := st.LastEvent; x != nil {
		ev = fmt.Sprintf("%s %s (%s) at %s", x.Target, x.Kind, x.Reason, x.At.Format(time.RFC3339))
	}
	rows := ""
	for _, m := range st.Targets {
		until := ""
		if m.Until != nil {
			until = m.Until.Format(time.RFC3339)
		}
		rows += fmt.Sprintf("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>\n",
			e(m.Target), e(string(m.State)), m.Since.Format(time.RFC3339), until, m.Removals, e(m.Reason))
	}
	return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>dydisnix self-adapt</title>
<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 10px;text-align:left}
.k{color:#555}</style></head><body>
<h1>dydisnix self-adapt</h1>
<p><span class="k">phase:</span> ` + e(st.Phase) + `<br>
<span class="k">last event:</span> ` + e(ev) + `<br>
<span class="k">last deploy:</span> ` + e(last) + `</p>
` + svg + `
<p class="k">solid arrow: dependsOn &middot; dashed arrow: connectsTo &middot; grey box: target not in use yet</p>
<h2>Targets</h2>
<table><tr><th>target</th><th>state</th><th>since</th><th>until</th><th>recent removals</th><th>reason</th></tr>
` + rows + `</table>
<p><a href="/status">/status</a> &middot; <a href="/explain">/explain</a> &middot; <a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a></p>
</body></html>
`
}
