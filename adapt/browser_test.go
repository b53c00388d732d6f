package adapt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

// ScreenshotDirEnv names the directory the browser tests write their
// screenshots to (default: the test's temporary directory).
const ScreenshotDirEnv = "DYDISNIX_SCREENSHOT_DIR"

// browser runs Debian's Chromium headless and returns its standard
// output; it fails the test on an error, so only the test's goroutine may
// call it (others use runBrowser).
func browser(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runBrowser(browserPath(t), t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// browserPath returns Chromium's path, or skips (fails in CI) without it.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed (.ci/run installs it)")
	return ""
}

// runBrowser runs Chromium headless (as root it needs --no-sandbox) with
// a fresh profile in profileDir.
func runBrowser(path, profileDir string, args ...string) (string, error) {
	// A bound for a hung browser, not a timing expectation.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
		"--hide-scrollbars", "--user-data-dir=" + profileDir}
	cmd := exec.CommandContext(ctx, path, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("chromium %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// screenshot saves the page at url as name (PNG) and logs where.
func screenshot(t *testing.T, url, name string, height int) string {
	t.Helper()
	dir := os.Getenv(ScreenshotDirEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	file, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	browser(t, "--screenshot="+file, "--window-size=1400,"+strconv.Itoa(height), "--virtual-time-budget=500", url)
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot in %s: %v", file, err)
	}
	t.Logf("screenshot: %s", file)
	return file
}

// TestStatusPageInABrowser loads the page of a running loop in a real
// headless browser: a rejected model shows a red banner; the page, left
// open, drops the banner once the model is fixed (its live part is
// fetched again).
func TestStatusPageInABrowser(t *testing.T) {
	h := newHarness(t, nil)
	h.snap(infraOf("machine1", "machine2", "machine3"))
	h.waitDeploy(5 * time.Second)

	// The server tells the test when the open page asks for its live
	// part the first time, and answers once the test has fixed the model.
	asked, fixed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	handler := h.l.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/live" {
			once.Do(func() {
				close(asked)
				<-fixed
			})
		}
		handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	release := sync.OnceFunc(func() { close(fixed) })
	defer release() // before srv.Close: a failing test must not leave the handler waiting

	h.planner.mu.Lock()
	h.planner.loadErr = errors.New("services.nix:12:5: dependsOn names the unknown service dbx")
	h.planner.mu.Unlock()
	h.advance(time.Hour) // the resync reloads the models
	h.settle()

	// Neither the screenshot nor this first look fetch the live part: the
	// page asks for it after 1 s, they stop after 500 ms of virtual time.
	screenshot(t, srv.URL+"/", "status-broken-model.png", 1200)
	dom := browser(t, "--dump-dom", "--virtual-time-budget=500", srv.URL+"/")
	if !strings.Contains(dom, `data-kind="models"`) || !strings.Contains(dom, "dependsOn names the unknown service dbx") {
		t.Fatalf("the page shows no banner for the rejected model:\n%s", dom)
	}

	// Now the page stays open long enough (in virtual time) to fetch its
	// live part; the model is fixed before the server answers.
	type result struct {
		dom string
		err error
	}
	domc := make(chan result, 1)
	path, profile := browserPath(t), t.TempDir()
	go func() {
		dom, err := runBrowser(path, profile, "--dump-dom", "--virtual-time-budget=3000", srv.URL+"/")
		domc <- result{dom, err}
	}()
	select {
	case <-asked:
	case r := <-domc:
		t.Fatalf("the page never fetched its live part (%v):\n%s", r.err, r.dom)
	}
	h.planner.mu.Lock()
	h.planner.loadErr = nil
	h.planner.mu.Unlock()
	h.advance(time.Hour)
	h.settle()
	release()
	r := <-domc
	if r.err != nil {
		t.Fatal(r.err)
	}
	dom = r.dom
	if strings.Contains(dom, `class="banner"`) {
		t.Fatalf("the banner stays on the open page after the fix:\n%s", dom)
	}
	if !strings.Contains(dom, `id="targets"`) || !strings.Contains(dom, "machine3") {
		t.Fatalf("the live part is missing after the update:\n%s", dom)
	}
}

// demoPass is a fake deploy pass with a small web application (services
// in containers) and agents reporting health, for the screenshots of a
// crash.
type demoPass struct {
	mu      sync.Mutex
	current model.Distribution
	block   chan struct{}
	started chan struct{}
}

var demoServices = func() model.Services {
	s := model.Services{
		"db":       {Name: "db", Type: "mysql-database"},
		"api":      {Name: "api", Type: "process", DependsOn: []string{"db"}},
		"web":      {Name: "web", Type: "process", DependsOn: []string{"api"}},
		"cache":    {Name: "cache", Type: "process"},
		"worker":   {Name: "worker", Type: "process", DependsOn: []string{"db"}, ConnectsTo: []string{"cache"}},
		"frontend": {Name: "frontend", Type: "apache-webapplication", DependsOn: []string{"web"}},
	}
	return s
}()

var demoContainers = map[string]string{"db": "mysql-database", "frontend": "apache-webapplication"}

func (p *demoPass) Load(ctx context.Context) (string, error) { return "demo", nil }

func (p *demoPass) Augment(ctx context.Context, infra model.Infrastructure) (model.Infrastructure, error) {
	return infra, nil
}

func (p *demoPass) Apply(ctx context.Context, infra model.Infrastructure, req rollout.Request) (*rollout.Result, error) {
	p.mu.Lock()
	prev := p.current.Clone()
	block, started := p.block, p.started
	p.mu.Unlock()
	names := infra.Names()
	dist := model.Distribution{}
	for i, s := range demoServices.Names() {
		t := names[i%len(names)]
		if old := prev.Targets(s); len(old) == 1 {
			if _, ok := infra[old[0]]; ok {
				t = old[0]
			}
		}
		dist[s] = []model.Mapping{{Target: t, Container: demoContainers[s]}}
	}
	var plan []string
	for _, s := range dist.Names() {
		if old := prev.Targets(s); len(old) == 0 || old[0] != dist.Targets(s)[0] {
			plan = append(plan, "activate "+s+" on "+dist.Targets(s)[0])
		}
	}
	if req.Progress != nil && len(plan) > 0 {
		s := dist.Names()[0]
		for _, n := range dist.Names() {
			if strings.HasSuffix(plan[0], " "+n+" on "+dist.Targets(n)[0]) {
				s = n
			}
		}
		req.Progress(deployer.StepEvent{Step: deployer.Step{ID: 1, Kind: deployer.StepActivate, Service: s, Target: dist.Targets(s)[0]}, Phase: deployer.PhaseStart}, len(plan))
	}
	if started != nil {
		started <- struct{}{}
	}
	if block != nil {
		<-block
	}
	p.mu.Lock()
	p.current = dist
	p.mu.Unlock()
	return &rollout.Result{Desired: &rollout.Desired{Services: demoServices, Infrastructure: infra, Distribution: dist}, Plan: plan}, nil
}

func (p *demoPass) Profiles(ctx context.Context, infra model.Infrastructure) map[string]*agentapi.Profile {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]*agentapi.Profile{}
	for _, s := range p.current.Names() {
		for _, m := range p.current[s] {
			if _, ok := infra[m.Target]; !ok {
				continue
			}
			if out[m.Target] == nil {
				out[m.Target] = &agentapi.Profile{}
			}
			e := agentapi.ProfileEntry{Service: model.ManifestService{Name: s}, Container: m.Container, Running: true, Healthy: true}
			if s == "worker" {
				e.Restarts = 2
			}
			out[m.Target].Services = append(out[m.Target].Services, e)
		}
	}
	return out
}

// TestStatusPageScreenshotsOfACrash screenshots the page of a loop on four
// machines before machine3 crashes, while the loop moves its services
// away (machine3 drawn down, still holding them, the running step shown)
// and after (what moved highlighted). With DYDISNIX_SCREENSHOT_DIR=docs
// it makes the pictures of docs/adapt.md.
func TestStatusPageScreenshotsOfACrash(t *testing.T) {
	pass := &demoPass{}
	h := newHarness(t, func(c *Config) { c.Pass = pass })
	srv := httptest.NewServer(h.l.Handler())
	defer srv.Close()
	machines := infraOf("machine1", "machine2", "machine3", "machine4")
	var evs []discovery.Event
	for _, n := range machines.Names() {
		evs = append(evs, discovery.Event{Kind: discovery.EventAdded, Target: n, Reason: discovery.ReasonAnnounced, At: h.clock.Now().Add(-40 * time.Millisecond)})
	}
	h.snap(machines, evs...)
	h.waitDeploy(5 * time.Second)
	h.l.refreshHealth(context.Background(), pass, machines)
	screenshot(t, srv.URL+"/", "status-before-crash.png", 1300)

	pass.mu.Lock()
	pass.block, pass.started = make(chan struct{}), make(chan struct{}, 1)
	pass.mu.Unlock()
	crashed := infraOf("machine1", "machine2", "machine4")
	h.snap(crashed, discovery.Event{Kind: discovery.EventRemoved, Target: "machine3", Reason: "probe failed: connection refused", At: h.clock.Now().Add(-1200 * time.Millisecond)})
	// Time passes until the grace period is over, machine3 is down and
	// the deploy starts (and blocks).
	for {
		h.handled()
		h.mu.Lock()
		busy := h.busy
		h.mu.Unlock()
		if busy {
			break
		}
		h.advance(tick)
	}
	waitChan(t, pass.started, "the deploy to start")
	h.l.refreshHealth(context.Background(), pass, crashed)
	if st := h.l.Status(); st.Running == nil {
		t.Errorf("no running step in the status during the deploy")
	}
	screenshot(t, srv.URL+"/", "status-during-crash.png", 1300)
	dom := browser(t, "--dump-dom", "--virtual-time-budget=500", srv.URL+"/")
	if !strings.Contains(dom, "machine3 (down)") {
		t.Errorf("the crashed machine is not drawn down during the deploy:\n%s", dom)
	}
	close(pass.block)
	h.waitDeploy(5 * time.Second)
	dom = browser(t, "--dump-dom", "--virtual-time-budget=500", srv.URL+"/")
	if !strings.Contains(dom, `class="moved"`) || !strings.Contains(dom, "machine3 →") {
		t.Errorf("what moved is not highlighted after the deploy:\n%s", dom)
	}
	screenshot(t, srv.URL+"/", "status-after-crash.png", 1300)
}
