package ha

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/internal/etcdtest"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/rollout"
)

const prefix = "/dydisnix/test/coordinator"

// coordinator is one Elector running until the test ends or it is stopped.
type coordinator struct {
	e     *Elector
	stop  context.CancelFunc
	done  chan struct{}
	watch <-chan adapt.Leader
}

func start(t *testing.T, cli *clientv3.Client, name string) *coordinator {
	t.Helper()
	e, err := New(Config{Client: cli, Prefix: prefix, Name: name, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &coordinator{e: e, stop: cancel, done: make(chan struct{}), watch: e.Watch(ctx)}
	go func() { defer close(c.done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// waitStanding waits until the coordinator's standing satisfies cond.
func (c *coordinator) waitStanding(t *testing.T, what string, cond func(adapt.Leader) bool) adapt.Leader {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ld := <-c.watch:
			if cond(ld) {
				return ld
			}
		case <-timeout:
			t.Fatalf("waiting for %s: standing is %+v", what, c.e.Standing())
		}
	}
}

func leading(ld adapt.Leader) bool { return ld.Leading }

func TestElectionAndGuardedState(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	cli := cluster.Client()
	a := start(t, cli, "a")
	first := a.waitStanding(t, "a to lead", leading)
	bStarted := time.Now()
	b := start(t, cli, "b")
	seen := b.waitStanding(t, "b to see a lead", func(ld adapt.Leader) bool { return ld.Name == "a" })
	if seen.Leading || seen.Revision != first.Revision || !seen.Since.Equal(first.Since) {
		t.Fatalf("b sees %+v, a leads as %+v", seen, first)
	}
	if _, _, err := b.e.Term(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a standby's term: %v", err)
	}
	if err := b.e.State().Save(context.Background(), &rollout.Record{}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a standby's save: %v", err)
	}
	if err := a.e.State().Save(context.Background(), &rollout.Record{Generations: []int{}}); err != nil {
		t.Fatalf("the leader's save: %v", err)
	}

	// b waits for longer than its TTL; then the election key of a's
	// session disappears (as when etcd expires its lease) while a still
	// believes it leads: b is elected with a higher revision and goes on
	// leading, and a's save fails as a whole.
	// The defect this guards against depends on elapsed time only (a
	// term's first deadline counted from when the session was granted): the
	// wait is the condition itself, not a margin.
	<-time.After(time.Until(bStarted.Add(2 * time.Second)))
	bKey, _ := electionKey(t, cli, "b")
	deleteKeyOf(t, cli, "a")
	next := b.waitStanding(t, "b to lead", leading)
	if got, err := cli.Get(context.Background(), bKey); err != nil || len(got.Kvs) != 1 || got.Kvs[0].CreateRevision != next.Revision || next.Name != "b" {
		t.Fatalf("new leader %+v: not elected with the key it campaigned with (%s: %v, %v)", next, bKey, got, err)
	}
	if next.Revision <= first.Revision {
		t.Fatalf("new leader %+v after %+v", next, first)
	}
	if err := b.e.State().Save(context.Background(), &rollout.Record{Generations: []int{}}); err != nil || b.e.Fence() != next.Revision {
		t.Fatalf("the new leader's save: %v; its fence %d, elected with %d", err, b.e.Fence(), next.Revision)
	}
	err := a.e.State().Save(context.Background(), &rollout.Record{Generations: []int{1}, Manifest: []byte("{}")})
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "deposed") {
		t.Fatalf("a deposed leader's save: %v", err)
	}
	if rec, err := b.e.State().Load(context.Background()); err != nil || rec == nil || len(rec.Generations) != 0 {
		t.Fatalf("the record after a refused save: %+v, %v", rec, err)
	}
	if a.e.Fence() >= b.e.Fence() {
		t.Fatalf("fence of the deposed leader %d, of the new one %d", a.e.Fence(), b.e.Fence())
	}
}

// electionKey returns the election key and lease of the coordinator named
// name.
func electionKey(t *testing.T, cli *clientv3.Client, name string) (string, clientv3.LeaseID) {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"/leader/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Value), `"name":"`+name+`"`) {
			return string(kv.Key), clientv3.LeaseID(kv.Lease)
		}
	}
	t.Fatalf("no election key of %s", name)
	return "", 0
}

func deleteKeyOf(t *testing.T, cli *clientv3.Client, name string) {
	t.Helper()
	key, _ := electionKey(t, cli, name)
	if _, err := cli.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

// proxy forwards TCP connections to an etcd member until cut: then every
// connection is closed and new ones are refused (a network partition
// between one coordinator and etcd).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(target, "http://")}
	t.Cleanup(func() { p.partition(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *proxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	p.mu.Lock()
	if err != nil || p.cut {
		p.mu.Unlock()
		c.Close()
		if u != nil {
			u.Close()
		}
		return
	}
	p.conns = append(p.conns, c, u)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
}

func (p *proxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
}

func TestPartitionedLeaderStopsBeforeTheNextLeads(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	px := newProxy(t, cluster.Endpoints()[0])
	acli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + px.ln.Addr().String()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acli.Close() })
	a := start(t, acli, "a")
	a.waitStanding(t, "a to lead", leading)
	ended := make(chan time.Time, 1)
	tctx, release, err := a.e.Term(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	context.AfterFunc(tctx, func() { ended <- time.Now() })
	b := start(t, cluster.Client(), "b")
	b.waitStanding(t, "b to see a lead", func(ld adapt.Leader) bool { return ld.Name == "a" })

	px.partition()
	next := b.waitStanding(t, "b to lead", leading)
	var end time.Time
	select {
	case end = <-ended:
	default:
		t.Fatal("b leads while the partitioned a's term still runs")
	}
	if !end.Before(next.Since) {
		t.Fatalf("a's term ended at %v, b leads since %v", end, next.Since)
	}
	if !errors.Is(context.Cause(tctx), ErrNotLeader) {
		t.Fatalf("cause of a's ended term: %v", context.Cause(tctx))
	}
	if a.e.Fence() >= b.e.Fence() {
		t.Fatalf("fence of the deposed leader %d, of the new one %d", a.e.Fence(), b.e.Fence())
	}
}

// writeState puts a generation, a ports file and a snapshot index into a
// coordinator's state directory.
func writeState(t *testing.T, dir, ports string, gen int, portsData, snapIndex string) {
	t.Helper()
	man, err := deployer.BuildManifest(model.Services{}, model.Infrastructure{}, model.Distribution{}, deployer.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	man.Generation = gen
	b, err := model.MarshalManifest(man)
	if err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string][]byte{
		filepath.Join(dir, "manifests", strconv.Itoa(gen)+".json"): b,
		ports: []byte(portsData),
		filepath.Join(dir, "snapshots", "store", "generations.json"): []byte(snapIndex),
	} {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func newPass(t *testing.T, e *Elector, dir, ports string) *rollout.Pass {
	t.Helper()
	cfg := rollout.Config{StateDir: dir, Models: rollout.Models{Ports: ports}}
	e.Configure(&cfg)
	p, err := rollout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewLeaderContinuesFromTheRecord(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	cli := cluster.Client()
	a := start(t, cli, "a")
	a.waitStanding(t, "a to lead", leading)
	b := start(t, cli, "b")
	tmp := t.TempDir()
	adir, bdir := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	aports, bports := filepath.Join(tmp, "a-ports.json"), filepath.Join(tmp, "b-ports.json")
	pa := a.e.NewPass(newPass(t, a.e, adir, aports))
	pb := b.e.NewPass(newPass(t, b.e, bdir, bports))
	writeState(t, adir, aports, 3, `{"ports":{"web":3000}}`, `[{"service":"store","digest":"sha256:aa","size":1,"generation":4}]`)
	// b once led and deployed generations the fleet never committed.
	writeState(t, bdir, bports, 7, `{"ports":{"web":9999}}`, `[]`)

	if err := pb.Snapshot(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a standby's snapshot: %v", err)
	}
	// The leader's pass saves its record (no stateful service: nothing
	// to snapshot).
	if err := pa.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.stop()
	<-a.done
	b.waitStanding(t, "b to lead", leading)
	if err := pb.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{
		{filepath.Join(adir, "manifests", "3.json"), filepath.Join(bdir, "manifests", "3.json")},
		{aports, bports},
		{filepath.Join(adir, "snapshots", "store", "generations.json"), filepath.Join(bdir, "snapshots", "store", "generations.json")},
	} {
		want, err1 := os.ReadFile(f[0])
		got, err2 := os.ReadFile(f[1])
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s = %q (%v), want the leader's %q (%v)", f[1], got, err2, want, err1)
		}
	}
	gens, err := pb.Store().Generations()
	if err != nil || len(gens) != 1 || gens[0] != 3 {
		t.Fatalf("b's generations after taking over: %v, %v", gens, err)
	}
	if _, err := os.Stat(filepath.Join(bdir, "manifests", "7.json.deposed")); err != nil {
		t.Errorf("b's uncommitted generation is not set aside: %v", err)
	}
	if cur, err := pb.Current(context.Background()); err != nil || cur == nil {
		t.Errorf("b's current distribution: %v, %v", cur, err)
	}
}

func TestNewLeaderFetchesTheSnapshots(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	cli := cluster.Client()
	dir := t.TempDir()
	ag, err := agent.New(agent.Config{StateDir: filepath.Join(dir, "agent"), Token: []byte("tok"), StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ag.Handler())
	t.Cleanup(func() { srv.Close(); ag.Close(true) })
	infra := model.Infrastructure{"t1": &model.Target{Name: "t1", Properties: map[string]any{"hostname": "t1", "agentURL": srv.URL}}}
	testenv.WriteExecutable(t, filepath.Join(dir, "svc.sh"), "#!/bin/sh\nexec sleep 600\n")
	models := rollout.Models{Services: filepath.Join(dir, "services.json"), QoS: filepath.Join(dir, "qos.yaml")}
	for file, data := range map[string]string{
		models.Services: `{"a": {"name": "a", "type": "process", "pkg": "svc.sh", "stateful": true}}`,
		models.QoS:      "steps:\n  - filter: mapStatefulToPrevious\n  - filter: divideRoundRobin\n",
	} {
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pass := func(e *Elector, name string) *Pass {
		cfg := rollout.Config{StateDir: filepath.Join(dir, name), Models: models, Token: "tok",
			Agents: &deployer.AgentTLS{InsecureHTTP: true}, Transition: rollout.Transition{DeployState: true}}
		e.Configure(&cfg)
		p, err := rollout.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		return e.NewPass(p)
	}
	a := start(t, cli, "a")
	a.waitStanding(t, "a to lead", leading)
	b := start(t, cli, "b")
	pa, pb := pass(a.e, "a"), pass(b.e, "b")
	ctx := context.Background()
	if _, err := pa.Apply(ctx, infra, rollout.Request{}); err != nil {
		t.Fatal(err)
	}
	if err := pa.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	info, ok, err := pa.Store().LatestSnapshot("a")
	if err != nil || !ok {
		t.Fatalf("the leader's snapshot of a: %v, %v", ok, err)
	}
	a.stop()
	<-a.done
	b.waitStanding(t, "b to lead", leading)
	if _, err := pb.Apply(ctx, infra, rollout.Request{}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(pa.Store().SnapshotPath("a", info.Digest))
	got, err := os.ReadFile(pb.Store().SnapshotPath("a", info.Digest))
	if err != nil || string(got) != string(want) {
		t.Fatalf("the new leader's store lacks the snapshot %s of a: %v", info.Digest, err)
	}
	if gens, err := pb.Store().Snapshots("a"); err != nil || len(gens) != 1 || gens[0] != info {
		t.Fatalf("the new leader's snapshot index of a: %+v, %v; want [%+v]", gens, err, info)
	}
}
