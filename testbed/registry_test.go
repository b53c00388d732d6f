package testbed

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// TestE2ERegistryAcrossSubnets runs the loop on two subnets joined by a
// router namespace, with a three-member etcd cluster: the far machines are
// invisible to mDNS from the coordinator's link, are discovered through
// their etcd registration and get services; with one etcd member killed,
// a far machine that crashes is seen as a crash (its lease expired) and
// the loop moves its services.
func TestE2ERegistryAcrossSubnets(t *testing.T) {
	testenv.NeedCommand(t, "etcd")
	h := newHarness(t, HarnessConfig{Machines: 2, Far: 2, Etcd: 3})
	tb := h.TB

	// mDNS does not cross the router: browsing the coordinator's link
	// finds the near machines only.
	out, err := tb.Coordinator().Command(filepath.Join(h.cfg.BinDir, "dydisnix-geninfra-mdns"), "--interface", "eth0", "-t", "2", "--no-probe").Output()
	if err != nil {
		t.Fatalf("geninfra-mdns in the coordinator's namespace: %v", err)
	}
	var seen map[string]any
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("geninfra-mdns output: %v\n%s", err, out)
	}
	if seen["machine1"] == nil || seen["remote1"] != nil || seen["remote2"] != nil {
		t.Fatalf("mDNS from the coordinator's link sees %v: want machine1 and no far machine", keys(seen))
	}

	st := settle(t, h, 0, "")
	for _, far := range []string{"remote1", "remote2"} {
		if !slices.Contains(st.Discovered, far) {
			t.Fatalf("%s was not discovered through etcd: %v", far, st.Discovered)
		}
	}
	victim := ""
	for _, s := range DemoServiceNames() {
		if tb.Far(st.TargetOf(s)) {
			victim = st.TargetOf(s)
		}
	}
	if victim == "" {
		t.Fatalf("no service was placed on the far subnet: %v", st.Distribution)
	}
	checkSingleInstances(t, h, st)

	// One etcd member down, the leader (the hardest case: an election,
	// every client's connection to it lost): the quorum of two serves, no
	// registration is lost, the crash of a far machine is seen when its
	// lease expires and its services move.
	leader, err := tb.EtcdLeader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.KillEtcd(leader); err != nil {
		t.Fatal(err)
	}
	cli, err := tb.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := discovery.RegistryConfig{}.Key("targets", victim)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := cli.Watch(wctx, key)
	// The watch is in place once etcd answered a request after it.
	if _, err := cli.Get(wctx, key); err != nil {
		t.Fatal(err)
	}
	if err := tb.Crash(victim); err != nil {
		t.Fatal(err)
	}
	deleted := false
	for wr := range watch {
		for _, ev := range wr.Events {
			deleted = deleted || ev.Type == clientv3.EventTypeDelete
		}
		if deleted || wr.Err() != nil {
			break
		}
	}
	if !deleted {
		t.Fatalf("the registration of %s was not removed after the crash", victim)
	}
	st2 := settle(t, h, st.Seq(), victim)
	causes := strings.Join(st2.LastDeploy.Causes, "; ")
	if !strings.Contains(causes, "target "+victim+" removed ("+discovery.ReasonLeaseExpired) || strings.Count(causes, "removed") != 1 {
		t.Errorf("causes of the redeploy: %s; want only %s removed, as a crash (%s)", causes, victim, discovery.ReasonLeaseExpired)
	}
	checkSingleInstances(t, h, st2)

	// The killed member rejoins on its data directory.
	if err := tb.RestartEtcd(leader); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() bool {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		_, err := cli.Status(sctx, tb.EtcdEndpoints()[leader])
		return err == nil
	}, "etcd member %d did not rejoin; its log ends:\n%s", leader, etcdLogTail{tb, leader})
}

// etcdLogTail formats the end of an etcd member's log when a message is
// printed.
type etcdLogTail struct {
	tb *Testbed
	i  int
}

func (e etcdLogTail) String() string {
	lines := strings.Split(strings.TrimSpace(e.tb.EtcdLog(e.i)), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// BenchmarkTestbedLeaseExpiry: in the testbed (three etcd members, one
// machine on the far subnet, the default 3 s TTL), kill -9 of every
// process of the machine → the registration's removal seen by a watch
// from the coordinator's namespace. Reported: seconds per removal; the
// target is TTL + 1 s.
func BenchmarkTestbedLeaseExpiry(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	testenv.NeedCommand(b, "etcd")
	tb, err := New(Config{Dir: b.TempDir(), BinDir: benchBinaries(b), Etcd: 3, FarSubnet: DefaultFarSubnet})
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	if _, err := tb.AddFar("remote1", nil); err != nil {
		b.Fatal(err)
	}
	cli, err := tb.EtcdClient()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	key := discovery.RegistryConfig{}.Key("targets", "remote1")
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		watch := cli.Watch(ctx, key, clientv3.WithCreatedNotify())
		<-watch // created
		if i > 0 {
			if err := tb.Start("remote1"); err != nil {
				b.Fatal(err)
			}
		}
		for registered := false; !registered; {
			if r, err := cli.Get(ctx, key); err == nil && len(r.Kvs) == 1 {
				break
			}
			wr, ok := <-watch
			if !ok {
				b.Fatal("remote1 did not register within a minute")
			}
			for _, ev := range wr.Events {
				registered = registered || ev.Type == clientv3.EventTypePut
			}
		}
		if err := tb.Crash("remote1"); err != nil {
			b.Fatal(err)
		}
		at := time.Now()
		for deleted := false; !deleted; {
			wr, ok := <-watch
			if !ok {
				b.Fatal("the registration of remote1 outlived its lease by a minute")
			}
			for _, ev := range wr.Events {
				deleted = deleted || ev.Type == clientv3.EventTypeDelete
			}
		}
		total += time.Since(at)
		cancel()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/removal")
}
