package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestPickPort: the ports picked are below the ephemeral range, distinct,
// and free to listen on.
func TestPickPort(t *testing.T) {
	t.Parallel()
	hi := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := Port(t)
		if p < lowestPort || p >= hi {
			t.Fatalf("port %d outside [%d, %d)", p, lowestPort, hi)
		}
		if seen[p] {
			t.Fatalf("port %d picked twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("picked port %d: %v", p, err)
		}
		ln.Close()
	}
}
