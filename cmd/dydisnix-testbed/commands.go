package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"

	"github.com/dydisnix/dydisnix/testbed"
)

// up starts the daemon in the background and prints the machines once they run.
func up(ctx context.Context, u *testbed.UpConfig, stdout io.Writer) error {
	resp, err := testbed.Up(ctx, *u)
	if err == nil {
		testbed.PrintResponse(stdout, resp)
	}
	return err
}

// benchScale runs the scale scenario (testbed.RunScale) with -n machines in
// --dir/bench-scale and prints its table (or JSON report). It needs root:
// the run measures the coordinator's namespace from the host.
func benchScale(ctx context.Context, o *options, stdout io.Writer) error {
	if testbed.NeedsUserNS() {
		return errors.New("bench-scale runs as root (it reads the coordinator namespace's /proc/net/snmp)")
	}
	if err := testbed.CheckBinaries(o.up.BinDir); err != nil {
		return err
	}
	progress := stdout
	if o.jsonOut {
		progress = io.Discard
	}
	report, err := testbed.RunScale(ctx, testbed.ScaleConfig{
		Dir: filepath.Join(o.up.Dir, "bench-scale"), BinDir: o.up.BinDir,
		Machines: o.up.Machines, Idle: o.idle, Progress: progress,
	})
	if report != nil {
		if o.jsonOut {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(report)
		} else {
			report.WriteTable(stdout)
		}
	}
	return err
}
