package testbed

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/testbed/services"
)

// TestWebSystemDemo runs the demo's story end to end with real MariaDB
// servers: the web system deployed on 4 machines; the machine hosting
// cmsdb crashes right after rows went into its databases; the machine
// hosting usersdb leaves gracefully; a machine joins. After the crash
// every database of the crashed machine is back on another machine,
// holding exactly what the last snapshot held (a prefix of the rows, no
// fewer than the snapshot saved), and the rows lost are no more than
// those written after the last snapshot; after the graceful leave and the
// add nothing is lost. Each event reports its moves with type, from and
// to.
func TestWebSystemDemo(t *testing.T) {
	needRoot(t)
	needMariaDB(t)
	bin := buildBinaries(t)
	cfg := DemoConfig{Dir: t.TempDir(), BinDir: bin}
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	report, err := RunDemo(ctx, cfg)
	if report != nil {
		data, _ := json.MarshalIndent(report, "", "  ")
		t.Logf("report:\n%s", data)
	}
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{}
	for _, ev := range report.Events {
		kinds = append(kinds, ev.Event)
	}
	if !slices.Equal(kinds, []string{"crash", "stop", "add"}) {
		t.Fatalf("events %v, want crash, stop, add", kinds)
	}
	stateful := append(append([]string{}, services.WebSystemDatabases...), "cms", "homework")
	for _, ev := range report.Events {
		for _, s := range stateful {
			if intact, ok := ev.DataIntact[s]; !ok || !intact {
				t.Errorf("%s %s: dataIntact[%s] = %v (reported: %v), want true", ev.Event, ev.Target, s, intact, ok)
			}
		}
		for _, m := range ev.Moved {
			if m.From == m.To || m.Type == "" {
				t.Errorf("%s: bad move %+v", ev.Event, m)
			}
		}
	}
	movedDB := func(ev DemoEvent, db string) bool {
		for _, m := range ev.Moved {
			if m.Service == db && m.Type == ContainerMySQL && m.From == ev.Target && m.To != "" {
				return true
			}
		}
		return false
	}
	crash, stop, add := report.Events[0], report.Events[1], report.Events[2]
	if !movedDB(crash, "cmsdb") {
		t.Errorf("crash of %s: cmsdb did not move off it: %+v", crash.Target, crash.Moved)
	}
	if crash.RowsWrittenAfterSnapshot == 0 || crash.RowsLost > crash.RowsWrittenAfterSnapshot {
		t.Errorf("crash: %d rows lost, %d written after the last snapshot: want some written after it and no more lost",
			crash.RowsLost, crash.RowsWrittenAfterSnapshot)
	}
	if !movedDB(stop, "usersdb") {
		t.Errorf("graceful stop of %s: usersdb did not move off it: %+v", stop.Target, stop.Moved)
	}
	for _, ev := range []DemoEvent{stop, add} {
		if ev.RowsLost != 0 {
			t.Errorf("%s: %d rows lost, want none", ev.Event, ev.RowsLost)
		}
	}
}
