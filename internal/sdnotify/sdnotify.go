// Package sdnotify tells systemd about a service's state (sd_notify(3)):
// "READY=1" once it serves, "STOPPING=1" when it begins to shut down,
// "STATUS=..." for a line that systemctl status shows.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// SocketEnv names the environment variable in which systemd passes the
// notification socket to a Type=notify service.
const SocketEnv = "NOTIFY_SOCKET"

// Notify sends state (newline-separated VAR=value assignments, e.g.
// "READY=1") to the socket named by $NOTIFY_SOCKET with one datagram. It
// does nothing and returns nil when the variable is unset (not started by
// systemd, or not Type=notify). A name starting with '@' is an abstract
// socket. The error names the socket.
func Notify(state string) error {
	socket := os.Getenv(SocketEnv)
	if socket == "" {
		return nil
	}
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", socket, err)
	}
	return nil
}
