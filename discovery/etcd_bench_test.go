package discovery

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dydisnix/dydisnix/internal/etcdtest"
)

// BenchmarkRegistryLeaseExpiry: a registered machine crashes (its lease
// is no longer kept alive, nothing is revoked) → the etcd source's removal
// event (ReasonLeaseExpired), on a real three-member etcd cluster with the
// default 3 s TTL. Reported: seconds from the crash to the event; the
// target is TTL + 1 s.
func BenchmarkRegistryLeaseExpiry(b *testing.B) {
	c := etcdtest.Start(b, 3)
	reg := RegistryConfig{Endpoints: c.Endpoints(), Prefix: "/dydisnix/bench-expiry"}
	if err := reg.Check(); err != nil {
		b.Fatal(err)
	}
	w := watchRegistry(b, EtcdSourceConfig{Registry: reg})
	<-w.snaps
	cli := c.Client()
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("m%d", i)
		lease, err := cli.Grant(ctx, reg.TTLSeconds())
		if err != nil {
			b.Fatal(err)
		}
		kctx, crash := context.WithCancel(ctx)
		alive, err := cli.KeepAlive(kctx, lease.ID)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range alive {
			}
		}()
		if _, err := cli.Put(ctx, reg.Key("targets", name), registrationDoc(b, testTarget(b, name, nil), "", nil), clientv3.WithLease(lease.ID)); err != nil {
			b.Fatal(err)
		}
		if _, e := w.next(b, name); e.Kind != EventAdded {
			b.Fatalf("%s: %+v", name, e)
		}
		crash()
		at := time.Now()
		if _, e := w.next(b, name); e.Kind != EventRemoved || e.Reason != ReasonLeaseExpired {
			b.Fatalf("%s after the crash: %+v", name, e)
		}
		total += time.Since(at)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/removal")
	b.ReportMetric(float64(reg.TTLSeconds()), "ttl-s")
}

// BenchmarkRegistry100Machines: 100 machines register at once (each its
// own registrar, client and lease) → the coordinator's etcd source emits
// its first model holding all of them, on a real three-member cluster.
func BenchmarkRegistry100Machines(b *testing.B) {
	const n = 100
	c := etcdtest.Start(b, 3)
	for i := 0; i < b.N; i++ {
		reg := RegistryConfig{Endpoints: c.Endpoints(), Prefix: fmt.Sprintf("/dydisnix/bench-100-%d", i)}
		w := watchRegistry(b, EtcdSourceConfig{Registry: reg})
		<-w.snaps
		start := time.Now()
		var stops []func()
		for j := 0; j < n; j++ {
			_, stop := runRegistrar(b, RegistrarConfig{Registry: reg, Target: testTarget(b, fmt.Sprintf("m%03d", j), nil)})
			stops = append(stops, stop)
		}
		for full := false; !full; {
			select {
			case s := <-w.snaps:
				full = len(s.Infrastructure) == n
			case <-time.After(time.Minute):
				b.Fatal("no full model within a minute")
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/full-model")
		b.StopTimer()
		for _, stop := range stops {
			stop()
		}
		w.stop()
		b.StartTimer()
	}
}
