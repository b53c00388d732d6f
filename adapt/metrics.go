package adapt

import (
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names served on /metrics.
const (
	MetricRedeploys        = "dydisnix_redeploys_total"
	MetricFailures         = "dydisnix_redeploy_failures_total"
	MetricChecks           = "dydisnix_checks_total"
	MetricDetection        = "dydisnix_detection_latency_seconds"
	MetricRedeployLatency  = "dydisnix_redeploy_latency_seconds"
	MetricTargets          = "dydisnix_targets"
	MetricServices         = "dydisnix_services"
	MetricSnapshots        = "dydisnix_snapshots_total"
	MetricModelLoadFailure = "dydisnix_model_load_failures_total"
	MetricSnapshotAge      = "dydisnix_snapshot_age_seconds"
)

type metrics struct {
	redeploys   *prometheus.CounterVec
	failures    prometheus.Counter
	checks      prometheus.Counter
	detection   prometheus.Histogram
	redeploy    prometheus.Histogram
	targets     *prometheus.GaugeVec
	services    prometheus.Gauge
	snapshots   *prometheus.CounterVec
	modelErrors prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	buckets := []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120}
	m := &metrics{
		redeploys: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRedeploys,
			Help: "Redeploys attempted, by result (success, failure)."}, []string{"result"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricFailures,
			Help: "Redeploys that failed (and were rolled back)."}),
		checks: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricChecks,
			Help: "Change checks that found the augmented infrastructure and models unchanged."}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricDetection, Buckets: buckets,
			Help: "Seconds from observing a change (discovery event, model edit) to starting its redeploy."}),
		redeploy: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricRedeployLatency, Buckets: buckets,
			Help: "Seconds from observing a change to the end of its successful redeploy."}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricTargets,
			Help: "Targets in the membership table, by state (up, leaving, probation, down)."}, []string{"state"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricServices,
			Help: "Services in the deployed distribution."}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricSnapshots,
			Help: "Scheduled snapshot runs, by result (success, failure, skipped)."}, []string{"result"}),
		modelErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricModelLoadFailure,
			Help: "Failed (re)loads of the model files."}),
	}
	for _, c := range []prometheus.Collector{m.redeploys, m.failures, m.checks, m.detection, m.redeploy, m.targets, m.services, m.snapshots, m.modelErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.redeploys.WithLabelValues("success")
	m.redeploys.WithLabelValues("failure")
	return m, nil
}

// snapshotAgeCollector serves the age of every stateful service's newest
// complete snapshot, computed at each scrape (+Inf: none yet).
type snapshotAgeCollector struct {
	l    *Loop
	desc *prometheus.Desc
}

func newSnapshotAgeCollector(l *Loop) snapshotAgeCollector {
	return snapshotAgeCollector{l: l, desc: prometheus.NewDesc(MetricSnapshotAge,
		"Seconds since the newest complete snapshot of each stateful service was taken (+Inf: none).", []string{"service"}, nil)}
}

// Describe implements prometheus.Collector.
func (c snapshotAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c snapshotAgeCollector) Collect(ch chan<- prometheus.Metric) {
	c.l.mu.Lock()
	ages := c.l.snapshotAges(c.l.status.Started, c.l.clock.Now())
	c.l.mu.Unlock()
	for _, a := range ages {
		v := a.AgeSeconds
		if a.Taken == nil {
			v = math.Inf(1)
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, a.Service)
	}
}
