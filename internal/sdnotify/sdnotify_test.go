package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listen binds a unixgram socket as systemd does and returns the name to
// put in $NOTIFY_SOCKET.
func listen(t *testing.T, abstract bool) (*net.UnixConn, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	if abstract {
		name = fmt.Sprintf("@dydisnix-sdnotify-test-%d", os.Getpid())
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, name
}

// The tests set $NOTIFY_SOCKET, so none runs in parallel.
func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		abstract bool
		state    string
	}{
		{"path", false, "READY=1"},
		{"abstract", true, "STOPPING=1\nSTATUS=draining"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, socket := listen(t, tc.abstract)
			t.Setenv(SocketEnv, socket)
			if err := Notify(tc.state); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			n, err := conn.Read(buf)
			if err != nil || string(buf[:n]) != tc.state {
				t.Fatalf("systemd received %q, %v; want %q", buf[:n], err, tc.state)
			}
		})
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv(SocketEnv, "")
	if err := Notify("READY=1"); err != nil {
		t.Fatalf("without %s: %v", SocketEnv, err)
	}
}

func TestNotifyNoListener(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "gone")
	t.Setenv(SocketEnv, socket)
	if err := Notify("READY=1"); err == nil || !strings.Contains(err.Error(), socket) {
		t.Fatalf("want an error naming %s, got %v", socket, err)
	}
}
