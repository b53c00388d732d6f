package agent

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus metrics, served on /metrics (behind
// the bearer token, like every endpoint: they name the services that run
// here, never a secret).
type metrics struct {
	reg         *prometheus.Registry
	restarts    *prometheus.CounterVec
	exits       *prometheus.CounterVec
	activations *prometheus.CounterVec
	deactivated prometheus.Counter
	requests    *prometheus.CounterVec
}

func newMetrics(a *Agent, reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		reg: reg,
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dydisnix_agent_service_restarts_total",
			Help: "Restarts of a supervised process after it exited."}, []string{"service"}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dydisnix_agent_service_exits_total",
			Help: "Unexpected exits (or failed starts) of a supervised process."}, []string{"service"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dydisnix_agent_activations_total",
			Help: "Activation requests, by result (success or failure)."}, []string{"result"}),
		deactivated: prometheus.NewCounter(prometheus.CounterOpts{Name: "dydisnix_agent_deactivations_total",
			Help: "Deactivation requests that succeeded."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dydisnix_agent_requests_total",
			Help: "HTTP requests, by route and status code (route \"unauthorized\": no or a wrong token)."}, []string{"route", "code"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	for _, c := range []prometheus.Collector{m.restarts, m.exits, m.activations, m.deactivated, m.requests,
		gauge("dydisnix_agent_services", "Services in the agent's profile.", func() float64 { return float64(a.Health().Services) }),
		gauge("dydisnix_agent_services_running", "Supervised processes running.", func() float64 { return float64(a.Health().Running) }),
		gauge("dydisnix_agent_locked", "1 while a coordinator holds the lock.", func() float64 { return b2f(a.Health().Locked) }),
		gauge("dydisnix_agent_draining", "1 while the agent drains.", func() float64 { return b2f(a.Health().Draining) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// count wraps the API's mux: every request is counted by its route (the
// mux's pattern) and status code.
func (m *metrics) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unauthorized"
			if sw.code != http.StatusUnauthorized {
				route = "unknown"
			}
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
