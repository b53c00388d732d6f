package etcdtest_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dydisnix/dydisnix/internal/etcdtest"
)

// TestClusterSurvivesOneMember writes through a three-member cluster, kills
// one member, writes again through the survivors, and brings the member back:
// the harness starts real servers that form a real quorum.
func TestClusterSurvivesOneMember(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/t/a", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	c.Kill(0)
	// If the killed member led, the survivors elect a new leader first: a
	// proposal made meanwhile times out on the server, and a client retries.
	for {
		_, err := cli.Put(ctx, "/t/b", "2")
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("put with one member down: %v\n%s", err, c.Log(1))
		case <-time.After(100 * time.Millisecond): // the next attempt
		}
	}
	c.Restart(0)
	resp, err := cli.Get(ctx, "/t/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if resp.Count != 2 {
		t.Fatalf("got %d keys under /t/, want 2", resp.Count)
	}
}
