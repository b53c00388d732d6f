package discovery

import (
	"net"
	"slices"
	"testing"
)

// TestBrowsable checks which interfaces are browsed when none is named
// (issue 9 item 7): up, multicast-capable, not loopback.
func TestBrowsable(t *testing.T) {
	t.Parallel()
	ifs := []net.Interface{
		{Name: "lo", Flags: net.FlagUp | net.FlagLoopback | net.FlagMulticast},
		{Name: "eth0", Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast | net.FlagRunning},
		{Name: "eth1", Flags: net.FlagBroadcast | net.FlagMulticast}, // down
		{Name: "tun0", Flags: net.FlagUp | net.FlagPointToPoint},     // no multicast
		{Name: "wlan0", Flags: net.FlagUp | net.FlagMulticast},
	}
	if got, want := browsable(ifs), []string{"eth0", "wlan0"}; !slices.Equal(got, want) {
		t.Errorf("browsable = %v, want %v", got, want)
	}
	if got := browsable(ifs[:1]); got != nil {
		t.Errorf("only a loopback: %v, want none", got)
	}
}
