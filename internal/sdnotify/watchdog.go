package sdnotify

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// WatchdogInterval returns the interval within which systemd expects
// "WATCHDOG=1" from this process ($WATCHDOG_USEC, for the process named by
// $WATCHDOG_PID when set), or zero when no watchdog is enabled for it.
// Send pings at half the interval, as sd_watchdog_enabled(3) advises.
func WatchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("$WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}
