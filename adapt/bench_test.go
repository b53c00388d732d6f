package adapt

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecide measures one decision step on a 100-target network: a
// snapshot in which one target changed, then the tick that orders the
// deploy, then the deploy's completion.
func BenchmarkDecide(b *testing.B) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("t%03d", i)
	}
	d := NewDecider(testTiming())
	now := t0
	d.Decide(Observation{Kind: ObsModels, ModelsHash: "m"}, now)
	infra := infraOf(names...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		infra[names[i%100]].Properties["load"] = i
		d.Decide(Observation{Kind: ObsSnapshot, Snapshot: Snapshot{Infrastructure: infra}}, now)
		now = now.Add(time.Second)
		a := d.Decide(Observation{Kind: ObsTick}, now)
		if a.Deploy == nil {
			b.Fatal("no deploy ordered")
		}
		d.Decide(Observation{Kind: ObsDeployDone, Key: a.Deploy.Key}, now)
	}
}

// BenchmarkLoopRedeploy measures the loop's own overhead per redeploy
// (snapshot in, decision, augment, hash, plan, recording deploy, report
// out) with zero debounce and the wall clock.
func BenchmarkLoopRedeploy(b *testing.B) {
	src := make(ChanSource)
	reports := make(chan DeployReport, 1)
	tm := testTiming()
	tm.Debounce, tm.Resync = -1, time.Hour
	l, err := New(Config{Source: src, Pass: fakePass{&fakePlanner{services: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}},
		&recordingDeployer{}}, Timing: tm, OnDeploy: func(r DeployReport) { reports <- r }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	infra := infraOf("t1", "t2", "t3", "t4", "t5")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := infra.Clone()
		next["t1"].Properties["load"] = i // a changed target: one redeploy
		src <- Snapshot{Infrastructure: next}
		if r := <-reports; r.Result != "success" {
			b.Fatal(r.Error)
		}
	}
	b.StopTimer()
	cancel()
	<-done
}
