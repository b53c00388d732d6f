package discovery

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// requestLog is an HTTP server on addr that serves target at TargetPath
// and records every request line it gets.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
	addr string
}

func (l *requestLog) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

func serveTarget(t *testing.T, addr string, target *model.Target) *requestLog {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &requestLog{addr: ln.Addr().String()}
	h := TargetHandler(func() *model.Target { return target })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.RequestURI())
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return l
}

// TestCompactEndpointOnAnnouncingHost covers finding 6 of the trust
// review: a compact announcement's endpoint was fetched with whatever
// host, path and query it named, every browse round (a blind SSRF). Now
// the endpoint must be an address of the announcing host itself, carries
// no path or query, and only TargetPath is ever fetched from it.
func TestCompactEndpointOnAnnouncingHost(t *testing.T) {
	if !netns.Inside(t) {
		netns.NewT(t, "ddt").RerunTest(t)
		return
	}
	good, err := model.TargetFromValue("good", map[string]any{"properties": map[string]any{"hostname": "good", "mem": 1}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := ContentHash(good)
	if err != nil {
		t.Fatal(err)
	}
	own := serveTarget(t, "127.0.0.1:0", good)   // the announcing host
	third := serveTarget(t, "127.0.0.2:0", good) // another machine on the network
	compact := func(host, endpoint string) *responder {
		r := loResponder(openLo(t), host, `hash="`+hash+`"`, "compact=true", `endpoint="`+endpoint+`"`)
		r.txt[1] = `properties."hostname"="good"` // claims the good machine's properties
		return r
	}
	// The responders all announce from 127.0.0.1 (A record 127.0.0.1).
	serveLo(t, compact("other", "http://"+third.addr))
	serveLo(t, compact("path", "http://"+own.addr+"/steal?x=1"))
	serveLo(t, compact("good", "http://"+own.addr))

	core, logs := observer.New(zap.DebugLevel)
	_, out := runBrowser(t, BrowserConfig{
		Logger:         zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())),
		BrowseInterval: 300 * time.Millisecond, InitialWait: 300 * time.Millisecond, Debounce: 50 * time.Millisecond, ProbeInterval: -1,
	})
	deadline := time.After(30 * time.Second) // failure bound only
	for added := false; !added; {
		select {
		case s := <-out:
			added = s.Infrastructure["good"] != nil
		case <-deadline:
			t.Fatal("the good machine's compact announcement was not fetched")
		}
	}
	refused := func(instance, why string) bool {
		for _, e := range logs.All() {
			if e.ContextMap()["instance"] == "disnix-"+instance && strings.Contains(e.ContextMap()["error"].(string), why) {
				return true
			}
		}
		return false
	}
	testenv.Eventually(t, time.Minute, func() bool {
		return refused("other", "not on the announcing host") && refused("path", "no user, path, query or fragment")
	}, "the announcements with a foreign endpoint and with a path were not refused")
	if got := third.seen(); len(got) != 0 {
		t.Errorf("the browser fetched from a third machine: %v", got)
	}
	for _, r := range own.seen() {
		if r != "GET "+TargetPath {
			t.Errorf("the browser fetched %q from the announcing host, want only GET %s", r, TargetPath)
		}
	}
}
