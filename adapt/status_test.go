package adapt

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, string, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, rec.Header().Get("Content-Type"), string(b)
}

func TestHandlers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.snap(infraOf("a", "b"))
	h.waitDeploy(5 * time.Second)
	h.snap(infraOf("a"), Event{Kind: EventRemoved, Target: "b", Reason: "goodbye", At: t0})
	h.waitDeploy(5 * time.Second)
	srv := h.l.Handler()

	code, _, body := get(t, srv, "/healthz")
	if code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}

	code, ctype, body := get(t, srv, "/status")
	if code != 200 || ctype != "application/json" {
		t.Fatalf("/status = %d %s", code, ctype)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status is not JSON: %v", err)
	}
	for _, k := range []string{"phase", "infrastructure", "targets", "distribution", "lastEvent", "lastDeploy"} {
		if _, ok := st[k]; !ok {
			t.Errorf("/status lacks %q: %s", k, body)
		}
	}
	last := st["lastDeploy"].(map[string]any)
	for _, k := range []string{"plan", "distribution", "detectionMs", "redeployMs", "result", "causes"} {
		if _, ok := last[k]; !ok {
			t.Errorf("/status lastDeploy lacks %q", k)
		}
	}
	if ev := st["lastEvent"].(map[string]any); ev["target"] != "b" || ev["reason"] != "goodbye" {
		t.Errorf("lastEvent = %v", ev)
	}
	if strings.Contains(body, "s3cret") {
		t.Errorf("/status leaks an augmented secret")
	}

	code, _, body = get(t, srv, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, name := range []string{MetricRedeploys + `{result="success"} 2`, MetricFailures, MetricDetection + "_bucket",
		MetricRedeployLatency + "_count 2", MetricTargets + `{state="up"} 1`, MetricTargets + `{state="down"} 1`, MetricServices + " 4"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}

	code, ctype, body = get(t, srv, "/")
	if code != 200 || !strings.HasPrefix(ctype, "text/html") {
		t.Fatalf("/ = %d %s", code, ctype)
	}
	for _, want := range []string{"<svg", `fetch("/live"`, `http-equiv="refresh"`, `id="target-a"`, `id="web@a"`, `dependsOn`, `id="deploys"`} {
		// Graphviz (when installed) escapes the dash of ids.
		if !strings.Contains(strings.ReplaceAll(body, "&#45;", "-"), want) {
			t.Errorf("/ lacks %q", want)
		}
	}
	if code, ctype, live := get(t, srv, "/live"); code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(live, `id="targets"`) || strings.Contains(live, "<html") {
		t.Errorf("/live = %d %s:\n%s", code, ctype, live)
	}
	if code, ctype, body := get(t, srv, "/explain"); code != 200 || ctype != "application/json" || !strings.Contains(body, `"explanation"`) {
		t.Errorf("/explain = %d %s %s", code, ctype, body)
	}
	if code, ctype, body := get(t, srv, "/diagram.svg"); code != 200 || ctype != "image/svg+xml" || !strings.HasPrefix(body, "<svg") {
		t.Errorf("/diagram.svg = %d %s", code, ctype)
	}
	if code, _, _ := get(t, srv, "/nope"); code != 404 {
		t.Errorf("/nope = %d", code)
	}
}
