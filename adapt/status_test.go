package adapt

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/model"
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
	var sum map[string]any
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatalf("/status is not JSON: %v", err)
	}
	for _, k := range []string{"phase", "summary", "lastEvent", "lastDeploy"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("/status lacks %q: %s", k, body)
		}
	}
	for _, k := range []string{"infrastructure", "targets", "distribution", "discovered", "events", "deploys", "services"} {
		if _, ok := sum[k]; ok {
			t.Errorf("the summary /status has %q", k)
		}
	}
	if ld := sum["lastDeploy"].(map[string]any); ld["plan"] != nil || ld["distribution"] != nil || ld["steps"] != float64(3) {
		t.Errorf("the summary's lastDeploy = %v, want its steps counted, no plan or distribution", ld)
	}
	if c := sum["summary"].(map[string]any); c["services"] != float64(4) || c["inUse"] != float64(1) ||
		c["targets"].(map[string]any)["up"] != float64(1) || c["targets"].(map[string]any)["down"] != float64(1) {
		t.Errorf("summary = %v", c)
	}
	if code, _, body := get(t, srv, "/status?detail=targets,nope"); code != 400 || !strings.Contains(body, `"nope"`) {
		t.Errorf("/status?detail=targets,nope = %d %s", code, body)
	}

	code, _, body = get(t, srv, "/status?detail=all")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status?detail=all = %d, %v", code, err)
	}
	for _, k := range []string{"phase", "infrastructure", "targets", "distribution", "lastEvent", "lastDeploy", "events", "deploys"} {
		if _, ok := st[k]; !ok {
			t.Errorf("/status?detail=all lacks %q: %s", k, body)
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

// TestStatusSummaryStaysSmall: at 100 targets and 1000 services the
// default /status is a summary of constant size; each detail section adds
// its lists.
func TestStatusSummaryStaysSmall(t *testing.T) {
	t.Parallel()
	st := Status{Started: t0, Phase: "idle", Infrastructure: model.Infrastructure{}, Distribution: model.Distribution{}}
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("machine%03d", i)
		st.Infrastructure[name] = &model.Target{Name: name, Properties: map[string]any{"agentURL": "http://" + name + ":7420"}}
		st.Discovered = append(st.Discovered, name)
		st.Targets = append(st.Targets, MemberStatus{Target: name, State: MemberUp, Since: t0})
	}
	for i := 0; i < 1000; i++ {
		svc := fmt.Sprintf("service%04d", i)
		st.Distribution[svc] = []model.Mapping{{Target: fmt.Sprintf("machine%03d", i%100)}}
		st.Services = append(st.Services, ServiceHealth{Service: svc, Target: fmt.Sprintf("machine%03d", i%100), Running: true, Healthy: i != 7})
		st.Deploys = append(st.Deploys, DeployReport{Seq: i})
	}
	st.LastDeploy = &DeployReport{Seq: 1, Distribution: st.Distribution, Plan: make([]string, 2000)}
	st.Summary = summarize(&st)
	tests := []struct {
		detail   string
		max      int // bytes
		has, not []string
	}{
		{"", 2000, []string{`"summary"`, `"unhealthy": 1`, `"services": 1000`, `"up": 100`}, []string{`"distribution"`, `"infrastructure"`, `"deploys"`, `"plan"`}},
		{"targets", 0, []string{`"infrastructure"`, `"discovered"`, `"targets": [`}, []string{`"distribution"`, `"deploys"`}},
		{"services", 0, []string{`"distribution"`, `"services": [`, `"plan"`}, []string{`"infrastructure"`, `"deploys"`}},
		{"history", 0, []string{`"deploys"`}, []string{`"distribution"`, `"infrastructure"`}},
		{"all", 0, []string{`"deploys"`, `"distribution"`, `"infrastructure"`}, nil},
	}
	for _, tc := range tests {
		t.Run("detail="+tc.detail, func(t *testing.T) {
			b, err := statusJSON(st, tc.detail)
			if err != nil {
				t.Fatal(err)
			}
			if tc.max > 0 && len(b) > tc.max {
				t.Errorf("%d bytes, want at most %d:\n%s", len(b), tc.max, b)
			}
			for _, w := range tc.has {
				if !strings.Contains(string(b), w) {
					t.Errorf("lacks %s", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(string(b), w) {
					t.Errorf("has %s", w)
				}
			}
		})
	}
}

// TestStatusConflicts: the hostname conflicts discovery reports are in the
// /status summary (count and list) and on the page.
func TestStatusConflicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := discovery.Conflict{Hostname: "a", Kept: discovery.Claim{Instance: "disnix-a", Endpoint: "http://10.0.0.1:9001"},
		Ignored: discovery.Claim{Instance: "disnix-0evil", Endpoint: "http://10.0.0.66:18080"}, Reason: discovery.ConflictFirstSeen}
	h.src <- Snapshot{Infrastructure: infraOf("a"), At: h.clock.Now(), Conflicts: []discovery.Conflict{c}}
	h.update(func() { h.sent++ })
	h.settle()
	srv := h.l.Handler()
	_, _, body := get(t, srv, "/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Summary.Conflicts != 1 || len(st.Conflicts) != 1 || st.Conflicts[0] != c {
		t.Errorf("/status: summary %+v, conflicts %+v; want the conflict", st.Summary, st.Conflicts)
	}
	_, _, page := get(t, srv, "/")
	if !strings.Contains(page, `id="conflicts"`) || !strings.Contains(page, "http://10.0.0.66:18080") {
		t.Errorf("the page does not show the conflict")
	}
}

// TestStatusSectionDropMatchesSections: the fields each detail section's
// drop empties are exactly the keys the section lists, so a section not
// asked for is neither rendered nor left behind.
func TestStatusSectionDropMatchesSections(t *testing.T) {
	t.Parallel()
	full := Status{Phase: "idle",
		Infrastructure: model.Infrastructure{"m": &model.Target{Name: "m"}}, Discovered: []string{"m"},
		Targets: []MemberStatus{{Target: "m"}}, Draining: []string{"m"},
		Distribution: model.Distribution{"s": {{Target: "m"}}}, Services: []ServiceHealth{{Service: "s"}},
		Snapshots: []SnapshotAge{{Service: "s"}}, Events: []EventRecord{{}}, Deploys: []DeployReport{{Seq: 1}}}
	keys := func(st Status) map[string]bool {
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for k, v := range m {
			if string(v) != "null" {
				out[k] = true
			}
		}
		return out
	}
	all := keys(full)
	if len(statusSectionDrop) != len(statusSections) {
		t.Fatalf("%d sections drop fields, %d are listed", len(statusSectionDrop), len(statusSections))
	}
	for sec, listed := range statusSections {
		st := full
		statusSectionDrop[sec](&st)
		left := keys(st)
		var dropped []string
		for k := range all {
			if !left[k] {
				dropped = append(dropped, k)
			}
		}
		sort.Strings(dropped)
		want := slices.Sorted(slices.Values(listed))
		if !slices.Equal(dropped, want) {
			t.Errorf("section %s: dropping empties %v, the section lists %v", sec, dropped, want)
		}
	}
}
