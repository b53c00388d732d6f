package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lowestPort is the lowest port PickPort chooses: above the well-known and
// most registered servers' ports.
const lowestPort = 10000

var (
	pickedMu sync.Mutex
	picked   = map[int]bool{} // ports this process handed out
)

// ephemeralLow is the first port of the kernel's ephemeral range, from
// which it gives outgoing connections and port-0 listeners their ports.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				return v
			}
		}
	}
	return 32768 // Linux's default
}

// PickPort returns a TCP port that was free on 127.0.0.1 a moment ago, for
// a server a test starts later. It is chosen at random below the kernel's
// ephemeral range and never twice in one process: a port from 127.0.0.1:0
// could be taken, before the server binds it, by any outgoing connection
// on the machine (a CI run under load lost tests to "address already in
// use" that way); a port below that range only by another process's
// explicit choice of the same one.
func PickPort() (int, error) {
	hi := ephemeralLow()
	if hi-lowestPort < 1000 {
		return 0, fmt.Errorf("the ephemeral port range starts at %d: no room below it to pick a port from", hi)
	}
	pickedMu.Lock()
	defer pickedMu.Unlock()
	for range 200 {
		p := lowestPort + rand.IntN(hi-lowestPort)
		if picked[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken
		}
		ln.Close()
		picked[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found below the ephemeral range in 200 tries")
}

// Port is PickPort for a test: it fails the test when no port is free.
func Port(t testing.TB) int {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
