package sdnotify

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		err             string
	}{
		{name: "unset"},
		{name: "for us", usec: "30000000", pid: self, want: 30 * time.Second},
		{name: "no pid", usec: "500000", want: 500 * time.Millisecond},
		{name: "another process", usec: "30000000", pid: "1"},
		{name: "zero", usec: "0", err: "positive number"},
		{name: "garbage", usec: "30s", err: `"30s"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, err := WatchdogInterval()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
