package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"github.com/dydisnix/dydisnix/internal/etcdtest"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

func testTarget(t testing.TB, name string, props map[string]any) *model.Target {
	t.Helper()
	p := map[string]any{"hostname": name}
	for k, v := range props {
		p[k] = v
	}
	tg, err := model.TargetFromValue(name, map[string]any{"properties": p}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// watcher runs an etcd source and hands its snapshots to the test.
type watcher struct {
	snaps chan Snapshot
	errc  chan error
	stop  context.CancelFunc
}

func watchRegistry(t testing.TB, cfg EtcdSourceConfig) *watcher {
	t.Helper()
	src, err := NewEtcdSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{snaps: make(chan Snapshot, 64), errc: make(chan error, 1), stop: cancel}
	go func() { w.errc <- src.Run(ctx, w.snaps) }()
	t.Cleanup(func() { cancel(); <-w.errc })
	return w
}

// next waits for the next snapshot with an event on target, failing after
// a minute (a test that would hang).
func (w *watcher) next(t testing.TB, target string) (Snapshot, Event) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case s := <-w.snaps:
			for _, e := range s.Events {
				if e.Target == target {
					return s, e
				}
			}
		case err := <-w.errc:
			t.Fatalf("source ended: %v", err)
		case <-deadline:
			t.Fatalf("no event on %s within a minute", target)
		}
	}
}

// runRegistrar runs a registrar until the returned stop is called (which
// waits for the goodbye).
func runRegistrar(t testing.TB, cfg RegistrarConfig) (*Registrar, func()) {
	t.Helper()
	r, err := NewRegistrar(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registrar: %v", err)
		}
	}
	t.Cleanup(stop)
	return r, stop
}

// TestRegistrationLifecycle registers a machine in a real etcd and follows
// it through the source: added once its endpoint answers (agentURL set),
// changed, and removed gracefully when the registrar stops (the leaving
// marker), which is told apart from a lease that expires (a crash).
func TestRegistrationLifecycle(t *testing.T) {
	c := etcdtest.Start(t, 1)
	reg := RegistryConfig{Endpoints: c.Endpoints(), Prefix: "/dydisnix/lifecycle", TTL: 2 * time.Second} // etcd's least TTL
	key := NewHMACKey([]byte("0123456789abcdef0123"))
	w := watchRegistry(t, EtcdSourceConfig{Registry: reg, Verifier: key, Logger: zaptest.NewLogger(t)})
	if s := <-w.snaps; len(s.Infrastructure) != 0 {
		t.Fatalf("first snapshot of an empty registry: %v", s.Infrastructure)
	}

	web := testTarget(t, "web1", map[string]any{"mem": 2048, "ratio": 0.5})
	srv := serveTarget(t, "127.0.0.1:0", web)
	endpoint := "http://" + srv.addr
	r, stop := runRegistrar(t, RegistrarConfig{Registry: reg, Target: web, Endpoint: endpoint, Signer: key, Logger: zaptest.NewLogger(t)})
	s, e := w.next(t, "web1")
	if e.Kind != EventAdded || e.Reason != ReasonRegistered {
		t.Fatalf("first event %+v, want added/registered", e)
	}
	got := s.Infrastructure["web1"]
	if got == nil || got.Properties[AgentURLProperty] != endpoint || fmt.Sprint(got.Properties["mem"]) != "2048" {
		t.Fatalf("registered target %+v, want mem 2048 and agentURL %s", got, endpoint)
	}
	if !strings.Contains(strings.Join(srv.seen(), ","), "HEAD "+TargetPath) {
		t.Errorf("the endpoint was not probed before the target was trusted: %v", srv.seen())
	}

	// The registration is attached to a lease of the configured TTL.
	cli := c.Client()
	ctx := context.Background()
	resp, err := cli.Get(ctx, reg.Key("targets", "web1"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("registration key: %v %v", resp, err)
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 2 {
		t.Fatalf("lease of the registration: granted TTL %d (%v), want 2 s", ttl.GrantedTTL, err)
	}

	if err := r.SetTarget(testTarget(t, "web1", map[string]any{"mem": 4096})); err != nil {
		t.Fatal(err)
	}
	s, e = w.next(t, "web1")
	if e.Kind != EventChanged || e.Reason != ReasonRegistrationChanged || fmt.Sprint(s.Infrastructure["web1"].Properties["mem"]) != "4096" {
		t.Fatalf("after SetTarget: %+v %v", e, s.Infrastructure["web1"])
	}

	stop()
	s, e = w.next(t, "web1")
	if e.Kind != EventRemoved || e.Reason != ReasonGoodbye || !e.Graceful() || s.Infrastructure["web1"] != nil {
		t.Fatalf("after a graceful stop: %+v, want a graceful removal", e)
	}

	// A crash: the lease is granted and then no longer kept alive.
	lease, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	doc := registrationDoc(t, testTarget(t, "db1", nil), "", key)
	if _, err := cli.Put(ctx, reg.Key("targets", "db1"), doc, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, e = w.next(t, "db1"); e.Kind != EventAdded {
		t.Fatalf("db1: %+v", e)
	}
	if _, e = w.next(t, "db1"); e.Kind != EventRemoved || e.Reason != ReasonLeaseExpired || e.Graceful() {
		t.Fatalf("db1 after its lease expired: %+v, want a removal as a crash", e)
	}
}

func registrationDoc(t testing.TB, tg *model.Target, endpoint string, signer Signer) string {
	t.Helper()
	n, err := NormalizeTarget(tg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistration(n, endpoint, signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRegistryTrust applies the announcements' trust rules to
// registrations: with a verify key an unsigned or wrongly signed one is
// ignored, a document whose content does not match its hash too, and a
// registration whose endpoint does not answer stays out of the model until
// it does.
func TestRegistryTrust(t *testing.T) {
	c := etcdtest.Start(t, 1)
	reg := RegistryConfig{Endpoints: c.Endpoints(), Prefix: "/dydisnix/trust"}
	key := NewHMACKey([]byte("0123456789abcdef0123"))
	other := NewHMACKey([]byte("another secret of 20b"))
	cli := c.Client()
	ctx := context.Background()
	put := func(name, doc string) {
		t.Helper()
		if _, err := cli.Put(ctx, reg.Key("targets", name), doc); err != nil {
			t.Fatal(err)
		}
	}
	tampered := registrationDoc(t, testTarget(t, "tampered", map[string]any{"mem": 1}), "", key)
	tampered = strings.Replace(tampered, `"mem":1`, `"mem":2`, 1)
	put("unsigned", registrationDoc(t, testTarget(t, "unsigned", nil), "", nil))
	put("forged", registrationDoc(t, testTarget(t, "forged", nil), "", other))
	put("tampered", tampered)
	put("garbage", "{not json")
	put("good", registrationDoc(t, testTarget(t, "good", nil), "", key))
	// An endpoint that accepts connections but serves nothing yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lateEndpoint := "http://" + ln.Addr().String()
	put("late", registrationDoc(t, testTarget(t, "late", nil), lateEndpoint, key))
	w := watchRegistry(t, EtcdSourceConfig{Registry: reg, Verifier: key, ProbeRetry: 100 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond})
	s := <-w.snaps
	if len(s.Infrastructure) != 1 || s.Infrastructure["good"] == nil {
		t.Fatalf("first model %v, want only good (late's endpoint does not answer)", s.Infrastructure)
	}
	srv := &http.Server{Handler: TargetHandler(func() *model.Target { return testTarget(t, "late", nil) })}
	go srv.Serve(ln)
	defer srv.Close()
	s, e := w.next(t, "late")
	if e.Kind != EventAdded || s.Infrastructure["late"].Properties[AgentURLProperty] != lateEndpoint {
		t.Fatalf("late once its endpoint answers: %+v %v", e, s.Infrastructure)
	}
	for _, n := range []string{"unsigned", "forged", "tampered", "garbage"} {
		if s.Infrastructure[n] != nil {
			t.Errorf("%s is in the model", n)
		}
	}
}

// TestCombinedSourceRule checks the rule for a hostname seen by two
// sources (the registry first, a watched file second): the target is in
// the model while either has it, with the registry's content; a different
// content in the second is a conflict.
func TestCombinedSourceRule(t *testing.T) {
	c := etcdtest.Start(t, 1)
	reg := RegistryConfig{Endpoints: c.Endpoints(), Prefix: "/dydisnix/combined"}
	file := filepath.Join(t.TempDir(), "infra.json")
	writeInfra := func(doc string) {
		t.Helper()
		if err := model.WriteFileAtomic(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeInfra(`{"local1": {"properties": {"hostname": "local1"}}, "both": {"properties": {"hostname": "both", "site": "lan"}}}`)
	_, stopBoth := runRegistrar(t, RegistrarConfig{Registry: reg, Target: testTarget(t, "both", map[string]any{"site": "registry"})})
	_, stopRemote := runRegistrar(t, RegistrarConfig{Registry: reg, Target: testTarget(t, "remote1", nil)})
	defer stopRemote()
	cli := c.Client()
	testenvEventually(t, func() bool {
		r, err := cli.Get(context.Background(), reg.TargetsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && r.Count == 2
	})
	es, err := NewEtcdSource(EtcdSourceConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Combine([]Source{es, NewFileSource(file)}, []string{"registry", "file"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{snaps: make(chan Snapshot, 64), errc: make(chan error, 1), stop: cancel}
	go func() { w.errc <- src.Run(ctx, w.snaps) }()
	defer func() { cancel(); <-w.errc }()

	s := <-w.snaps
	if len(s.Infrastructure) != 3 || s.Infrastructure["both"].Properties["site"] != "registry" {
		t.Fatalf("first model %v, want local1, remote1 and both with the registry's content", s.Infrastructure)
	}
	if len(s.Conflicts) != 1 || s.Conflicts[0].Hostname != "both" || s.Conflicts[0].Kept.Instance != "registry:both" || s.Conflicts[0].Reason != CombineRule {
		t.Fatalf("conflicts %+v, want both kept by the registry", s.Conflicts)
	}
	stopBoth()
	s, e := w.next(t, "both")
	if e.Kind != EventChanged || s.Infrastructure["both"].Properties["site"] != "lan" || len(s.Conflicts) != 0 {
		t.Fatalf("after the registry lost both: %+v %v %v, want the file's content", e, s.Infrastructure["both"], s.Conflicts)
	}
	writeInfra(`{"local1": {"properties": {"hostname": "local1"}}}`)
	s, e = w.next(t, "both")
	if e.Kind != EventRemoved || s.Infrastructure["both"] != nil || len(s.Infrastructure) != 2 {
		t.Fatalf("after both left every source: %+v %v", e, s.Infrastructure)
	}
}

func testenvEventually(t *testing.T, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, cond, "the registrations were not written")
}

// TestRegistrarTakesOverItsPreviousRun: a machine restarted before the
// lease of its previous run expired registers the same document; it takes
// the key over at once, and the watchers see no removal. Another content
// under a live lease (another machine claiming the hostname) is not taken.
func TestRegistrarTakesOverItsPreviousRun(t *testing.T) {
	c := etcdtest.Start(t, 1)
	reg := RegistryConfig{Endpoints: c.Endpoints(), Prefix: "/dydisnix/takeover"}
	cli := c.Client()
	ctx := context.Background()
	old, err := cli.Grant(ctx, 60) // the crashed run's lease, still running
	if err != nil {
		t.Fatal(err)
	}
	key := reg.Key("targets", "web1")
	web := testTarget(t, "web1", map[string]any{"mem": 1})
	if _, err := cli.Put(ctx, key, registrationDoc(t, web, "", nil), clientv3.WithLease(old.ID)); err != nil {
		t.Fatal(err)
	}
	other := reg.Key("targets", "db1")
	if _, err := cli.Put(ctx, other, registrationDoc(t, testTarget(t, "db1", map[string]any{"owner": "first"}), "", nil), clientv3.WithLease(old.ID)); err != nil {
		t.Fatal(err)
	}
	w := watchRegistry(t, EtcdSourceConfig{Registry: reg})
	if s := <-w.snaps; len(s.Infrastructure) != 2 {
		t.Fatalf("first model %v", s.Infrastructure)
	}
	_, stopWeb := runRegistrar(t, RegistrarConfig{Registry: reg, Target: web})
	defer stopWeb()
	_, stopDB := runRegistrar(t, RegistrarConfig{Registry: reg, Target: testTarget(t, "db1", map[string]any{"owner": "second"})})
	defer stopDB()
	testenv.Eventually(t, 30*time.Second, func() bool {
		r, err := cli.Get(ctx, key)
		return err == nil && len(r.Kvs) == 1 && r.Kvs[0].Lease != int64(old.ID)
	}, "web1 was not taken over")
	r, err := cli.Get(ctx, other)
	if err != nil || len(r.Kvs) != 1 || r.Kvs[0].Lease != int64(old.ID) {
		t.Fatalf("db1, registered by another machine with other content, changed hands: %v %v", r, err)
	}
	// The revoke of the old lease removes db1 (its holder) only: the next
	// event is about db1, none about web1 came before.
	if _, err := cli.Revoke(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(time.Minute)
	for {
		var s Snapshot
		select {
		case s = <-w.snaps:
		case <-deadline:
			t.Fatal("db1 of the second registrar not in the model within a minute")
		}
		for _, e := range s.Events {
			if e.Target == "web1" {
				t.Fatalf("an event on web1 after the takeover: %+v", e)
			}
		}
		if s.Infrastructure["db1"] != nil && s.Infrastructure["db1"].Properties["owner"] == "second" {
			if s.Infrastructure["web1"] == nil {
				t.Fatal("web1 left the model")
			}
			return
		}
	}
}
