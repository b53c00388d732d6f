package netns

import (
	"bytes"
	"context"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// envChild names the test that a re-executed test binary runs inside a
// namespace.
const envChild = "DYDISNIX_NETNS_CHILD_TEST"

// NewT makes a namespace for a test, skipping the test when namespaces are
// not available, and deletes it when the test ends (even when it fails).
func NewT(t testing.TB, prefix string) *Namespace {
	t.Helper()
	if err := Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	n, err := New(prefix)
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return n
}

// NewNetworkT makes a network of n nodes for a test (see NewT).
func NewNetworkT(t testing.TB, prefix string, n int) *Network {
	t.Helper()
	if err := Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	nw, err := NewNetwork(prefix, n)
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return nw
}

// Inside reports whether this process is the copy of the test binary that
// RerunTest started inside a namespace for test t.
func Inside(t testing.TB) bool { return os.Getenv(envChild) == t.Name() }

// RerunTest runs test t again in a copy of the test binary inside the
// namespace, streaming its output into t's log, and fails t when the copy
// fails. The copy sees Inside(t) == true.
func (n *Namespace) RerunTest(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	timeout := 2 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - 5*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := n.Command(ctx, exe, "-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+t.Name())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	t.Logf("output of the test inside namespace %s:\n%s", n.Name, out.String())
	if err != nil {
		t.Fatalf("test inside namespace %s: %v", n.Name, err)
	}
	if bytes.Contains(out.Bytes(), []byte("--- SKIP")) {
		t.Skip("the test skipped itself inside the namespace")
	}
}

// StartT starts cmd and makes sure it is killed (and waited for) when the
// test ends. It returns a channel closed when the process exits.
func StartT(t testing.TB, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("process %d did not exit", cmd.Process.Pid)
		}
	})
	return done
}
