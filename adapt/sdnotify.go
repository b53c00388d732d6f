package adapt

import (
	"fmt"
	"net"
	"os"
)

// Notify sends a systemd notification (sd_notify(3)), e.g. "READY=1" or
// "STOPPING=1", to the socket named by $NOTIFY_SOCKET with one unixgram
// write. It does nothing when the variable is unset (not run by systemd, or
// not Type=notify). A name starting with '@' is an abstract socket.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}
