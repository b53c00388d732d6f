package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dydisnix/dydisnix/testbed/services"
)

// DemoEvent is what one network change did.
type DemoEvent struct {
	Event       string         `json:"event"` // crash, stop or add
	Target      string         `json:"target"`
	DetectedMs  int64          `json:"detectedMs"`
	RecoveredMs int64          `json:"recoveredMs"`
	Moved       []MovedService `json:"moved"`
	// DataIntact tells, per stateful service, whether its data came back
	// as expected: after a graceful leave or an add everything written;
	// after a crash everything its last snapshot held, unchanged.
	DataIntact map[string]bool `json:"dataIntact"`
	// State is what the checks found, per stateful service.
	State []StateCheck `json:"state"`
	// RowsWrittenAfterSnapshot (crash only) counts the rows written into
	// the crashed machine's databases after the last snapshot the demo saw
	// the coordinator complete (one that began after the earlier writes):
	// what --snapshot's schedule may lose. RowsLost is what was lost: the
	// restored database holds the rows up to some point, at least those
	// of that snapshot.
	RowsWrittenAfterSnapshot int `json:"rowsWrittenAfterSnapshot"`
	RowsLost                 int `json:"rowsLost"`
}

// MovedService is one service that changed machines.
type MovedService struct {
	Service string `json:"service"`
	Type    string `json:"type"`
	From    string `json:"from"`
	To      string `json:"to"`
}

// StateCheck is the check of one stateful service after an event.
type StateCheck struct {
	Service    string `json:"service"`
	Type       string `json:"type"`
	Target     string `json:"target"`
	Rows       int    `json:"rows,omitempty"`  // databases
	Files      int    `json:"files,omitempty"` // applications
	Checksum   string `json:"checksum"`
	DataIntact bool   `json:"dataIntact"`
	RowsLost   int    `json:"rowsLost,omitempty"`
	Problem    string `json:"problem,omitempty"`
}

// DemoReport is the demo's result.
type DemoReport struct {
	Events []DemoEvent `json:"events"`
	// SnapshotSchedule is the loop's --snapshot-schedule.
	SnapshotSchedule string `json:"snapshotSchedule"`
}

// row is one record as the demo wrote it.
type row struct {
	id          int64
	owner, body string
}

// dbState is what the demo knows one database holds.
type dbState struct {
	app  string // the application that writes it
	rows []row
	// saved is how many of rows a completed snapshot holds.
	saved int
}

func (d *dbState) checksum(n int) string {
	h := sha256.New()
	for _, r := range d.rows[:n] {
		fmt.Fprintf(h, "%d\t%s\t%s\n", r.id, r.owner, r.body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type demo struct {
	h      *Harness
	svcs   map[string]any
	dbs    map[string]*dbState          // by database service
	files  map[string]map[string]string // by application: name → content
	users  []string
	report DemoReport
}

// RunDemo starts a testbed of machines, each with a MariaDB server of its
// own, and the self-adaptive loop in a coordinator namespace; deploys the
// web system (WebSystemModel); writes records and uploads files; crashes
// the machine hosting a database, stops another gracefully and adds a new
// one, checking after each event that every service is healthy again and
// every database (row count and checksum) and every application's files
// are as expected: all of it after a graceful leave, what the last
// snapshot held after a crash.
func RunDemo(ctx context.Context, cfg DemoConfig) (*DemoReport, error) {
	if cfg.Machines == 0 {
		cfg.Machines = 4
	}
	comps := filepath.Join(cfg.Dir, "components")
	if err := services.WriteWebSystemComponents(comps); err != nil {
		return nil, err
	}
	svcs := WebSystemModel(cfg.BinDir, comps)
	augmentFile := filepath.Join(cfg.Dir, "augment.yaml")
	h, err := NewHarness(HarnessConfig{Dir: cfg.Dir, BinDir: cfg.BinDir, Machines: cfg.Machines, Progress: cfg.Progress,
		Services: svcs, AugmentFile: augmentFile, Containers: []string{ContainerMySQL}, MySQLAccounts: services.WebSystemDatabases})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := os.WriteFile(augmentFile, []byte(h.TB.ContainersAugment()), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	h.Say("Started %d machines, each a network namespace with a MariaDB server and a dydisnix-agent announcing both over mDNS (no password)", cfg.Machines)
	if err := h.StartLoop(); err != nil {
		return nil, err
	}
	if l := cfg.Status; l != nil {
		if err := h.WaitStatus(ctx); err != nil {
			return nil, err
		}
		go h.TB.Coordinator().Forward(l, h.StatusAddr())
		defer l.Close()
		h.Say("Coordinator: dydisnix-self-adapt in a namespace of its own, adding the MariaDB password by augmentation; its status page: http://%s/", l.Addr())
	} else {
		h.Say("Coordinator: dydisnix-self-adapt in a namespace of its own, adding the MariaDB password by augmentation (status page not forwarded to the host)")
	}
	d := &demo{h: h, svcs: svcs, dbs: map[string]*dbState{}, files: map[string]map[string]string{}}
	d.report.SnapshotSchedule = loopSnapshotSchedule
	for _, a := range webApps {
		if a.db != "" {
			d.dbs[a.db] = &dbState{app: a.name}
		}
		if a.files {
			d.files[a.name] = map[string]string{}
		}
	}
	err = d.story(ctx, cfg.Machines)
	if err == nil && cfg.KeepRunning {
		h.Say("Still running (--keep-running); Ctrl-C stops the machines and the loop")
		<-ctx.Done()
	}
	return &d.report, err
}

// request sends an HTTP request to an application from the coordinator's
// namespace.
func (d *demo) request(st *Status, method, app, path, user, body string) (string, error) {
	port := d.h.ServicePorts()[app]
	addr, err := d.h.Addr(st.TargetOf(app), port)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := d.h.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s%s: %w", method, app, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s%s: %s: %s", method, app, path, resp.Status, strings.TrimSpace(string(data)))
	}
	return string(data), nil
}

// addRows writes n records into database db through its application.
func (d *demo) addRows(st *Status, db string, n int, tag string) error {
	s := d.dbs[db]
	for i := 0; i < n; i++ {
		owner, body := "admin", ""
		if db == "usersdb" {
			body = fmt.Sprintf("user-%d", len(s.rows)+1)
		} else {
			owner = d.users[len(s.rows)%len(d.users)]
			body = fmt.Sprintf("%s record %d (%s)", db, len(s.rows)+1, tag)
		}
		out, err := d.request(st, http.MethodPost, s.app, "/records", owner, body)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: the new record's id %q: %w", s.app, out, err)
		}
		s.rows = append(s.rows, row{id, owner, body})
		if db == "usersdb" {
			d.users = append(d.users, body)
		}
	}
	return nil
}

// upload stores n files in an application.
func (d *demo) upload(st *Status, app string, n int) error {
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("upload-%d.txt", len(d.files[app])+1)
		content := fmt.Sprintf("%s: file %s, uploaded at %s\n", app, name, time.Now().Format(time.RFC3339Nano))
		if _, err := d.request(st, http.MethodPut, app, "/files/"+name, "", content); err != nil {
			return err
		}
		d.files[app][name] = content
	}
	return nil
}

// snapshotted waits until a snapshot that began after every write so far
// has completed (two completions after now: the second began after the
// first ended), and marks every row as saved.
func (d *demo) snapshotted(ctx context.Context) error {
	for i := 0; i < 2; i++ {
		if err := d.h.WaitSnapshot(ctx, time.Now(), 60*time.Second); err != nil {
			return err
		}
	}
	for _, s := range d.dbs {
		s.saved = len(s.rows)
	}
	return nil
}

func (d *demo) story(ctx context.Context, machines int) error {
	st, _, err := d.h.Settled(ctx, 0, "", 180*time.Second)
	if err != nil {
		return fmt.Errorf("initial deployment: %w", err)
	}
	d.h.Say("Deployed the web system (deploy #%d): databases on MariaDB, applications dependsOn them, the portal connectsTo the applications:%s",
		st.Seq(), st.Placement(WebSystemServiceNames()))
	if err := d.addRows(st, "usersdb", 5, "start"); err != nil {
		return fmt.Errorf("write users: %w", err)
	}
	for _, db := range []string{"cmsdb", "homeworkdb"} {
		if err := d.addRows(st, db, 10, "start"); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
	}
	for app := range d.files {
		if err := d.upload(st, app, 3); err != nil {
			return fmt.Errorf("upload files: %w", err)
		}
	}
	if err := d.snapshotted(ctx); err != nil {
		return err
	}
	d.h.Say("Wrote 5 users and 10 records into each application's database, uploaded 3 files into cms and homework; the coordinator's snapshot job (%s) has saved them", loopSnapshotSchedule)

	// 1. The machine hosting a database crashes, right after more rows
	// went into its databases: those are newer than the last snapshot.
	victim := st.TargetOf("cmsdb")
	for _, db := range d.dbsOn(st, victim) {
		if err := d.addRows(st, db, 4, "after the last snapshot"); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
	}
	if st, err = d.event(ctx, st, "crash", victim, func() error { return d.h.TB.Crash(victim) }); err != nil {
		return err
	}
	// 2. A machine hosting a database leaves gracefully: its databases
	// are dumped and loaded on another machine, rows written after the
	// last snapshot included.
	for db := range d.dbs {
		if err := d.addRows(st, db, 3, "before the stop"); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
	}
	leaver := st.TargetOf("usersdb")
	if st, err = d.event(ctx, st, "stop", leaver, func() error { return d.h.TB.Stop(leaver) }); err != nil {
		return err
	}
	// 3. A new machine joins.
	newName := fmt.Sprintf("machine%d", machines+1)
	if _, err = d.event(ctx, st, "add", newName, func() error {
		_, err := d.h.TB.Add(newName, nil)
		return err
	}); err != nil {
		return err
	}
	d.h.Say("Done: %d events, every service healthy; nothing lost on the graceful leave, and the crash lost only the rows written after the last snapshot.", len(d.report.Events))
	return nil
}

// dbsOn lists the databases placed on target.
func (d *demo) dbsOn(st *Status, target string) []string {
	var out []string
	for _, db := range services.WebSystemDatabases {
		if st.TargetOf(db) == target {
			out = append(out, db)
		}
	}
	return out
}

func (d *demo) event(ctx context.Context, before *Status, kind, target string, do func() error) (*Status, error) {
	d.h.Say("Event: %s %s", kind, target)
	start := time.Now()
	crashed := map[string]bool{}
	if kind == "crash" {
		for _, db := range d.dbsOn(before, target) {
			crashed[db] = true
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- do() }()
	if kind != "stop" { // a graceful stop returns only once the machine has drained
		if err := <-errc; err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, target, err)
		}
	}
	avoid := ""
	if kind != "add" {
		avoid = target
	}
	st, at, err := d.h.Settled(ctx, before.Seq(), avoid, 180*time.Second)
	if err != nil {
		return nil, fmt.Errorf("after %s %s: %w", kind, target, err)
	}
	if kind == "stop" {
		select {
		case err := <-errc:
			if err != nil {
				return nil, fmt.Errorf("stop %s: %w", target, err)
			}
		case <-time.After(90 * time.Second):
			return nil, fmt.Errorf("stop %s: the machine did not finish draining", target)
		}
	}
	ev := DemoEvent{Event: kind, Target: target, RecoveredMs: at.Sub(start).Milliseconds(), Moved: []MovedService{}, DataIntact: map[string]bool{}}
	if ld := st.LastDeploy; ld != nil && !ld.ChangeAt.IsZero() {
		ev.DetectedMs = ld.ChangeAt.Sub(start).Milliseconds()
	}
	for _, s := range WebSystemServiceNames() {
		if from, to := before.TargetOf(s), st.TargetOf(s); from != to {
			typ, _ := d.svcs[s].(map[string]any)["type"].(string)
			ev.Moved = append(ev.Moved, MovedService{Service: s, Type: typ, From: from, To: to})
		}
	}
	ok := true
	for _, db := range services.WebSystemDatabases {
		c := d.checkDB(st, db, crashed[db], &ev)
		ev.State = append(ev.State, c)
		ev.DataIntact[db] = c.DataIntact
		ok = ok && c.DataIntact
	}
	apps := make([]string, 0, len(d.files))
	for app := range d.files {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	for _, app := range apps {
		c := d.checkFiles(st, app)
		ev.State = append(ev.State, c)
		ev.DataIntact[app] = c.DataIntact
		ok = ok && c.DataIntact
	}
	d.report.Events = append(d.report.Events, ev)
	d.say(ev, st)
	if !ok {
		return nil, fmt.Errorf("after %s %s: data lost or changed", kind, target)
	}
	if kind == "crash" && ev.RowsLost > ev.RowsWrittenAfterSnapshot {
		return nil, fmt.Errorf("after crash %s: %d rows lost, more than the %d written after the last snapshot", target, ev.RowsLost, ev.RowsWrittenAfterSnapshot)
	}
	return st, nil
}

// checkDB compares a database with what the demo wrote. After a crash of
// its machine it must hold exactly a prefix of the rows, at least those
// the last snapshot before the crash held; the rest are lost (and
// forgotten by the demo). Otherwise it must hold every row.
func (d *demo) checkDB(st *Status, db string, crashed bool, ev *DemoEvent) StateCheck {
	s := d.dbs[db]
	c := StateCheck{Service: db, Type: ContainerMySQL, Target: st.TargetOf(db)}
	out, err := d.request(st, http.MethodGet, s.app, "/summary", "", "")
	var sum struct {
		Rows     int    `json:"rows"`
		Checksum string `json:"checksum"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(out), &sum)
	}
	if err != nil {
		c.Problem = err.Error()
		return c
	}
	c.Rows, c.Checksum = sum.Rows, sum.Checksum
	want := len(s.rows)
	if crashed {
		ev.RowsWrittenAfterSnapshot += len(s.rows) - s.saved
		if sum.Rows < s.saved || sum.Rows > len(s.rows) {
			c.Problem = fmt.Sprintf("%d rows: want between %d (saved by the last snapshot) and %d", sum.Rows, s.saved, len(s.rows))
			return c
		}
		want = sum.Rows
		c.RowsLost = len(s.rows) - want
		ev.RowsLost += c.RowsLost
	}
	if sum.Rows != want || sum.Checksum != s.checksum(want) {
		c.Problem = fmt.Sprintf("%d rows, checksum %.12s: want %d rows, checksum %.12s", sum.Rows, sum.Checksum, want, s.checksum(want))
		return c
	}
	s.rows = s.rows[:want]
	if db == "usersdb" {
		d.users = d.users[:want]
	}
	c.DataIntact = true
	return c
}

// checkFiles compares an application's uploaded files with what the demo
// uploaded.
func (d *demo) checkFiles(st *Status, app string) StateCheck {
	c := StateCheck{Service: app, Type: "process", Target: st.TargetOf(app)}
	out, err := d.request(st, http.MethodGet, app, "/files", "", "")
	var sum struct {
		Files    int    `json:"files"`
		Checksum string `json:"checksum"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(out), &sum)
	}
	if err != nil {
		c.Problem = err.Error()
		return c
	}
	c.Files, c.Checksum = sum.Files, sum.Checksum
	names := make([]string, 0, len(d.files[app]))
	for n := range d.files[app] {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		data := []byte(d.files[app][n])
		fmt.Fprintf(h, "%s\t%d\t%x\n", n, len(data), sha256.Sum256(data))
	}
	if want := hex.EncodeToString(h.Sum(nil)); sum.Files != len(names) || sum.Checksum != want {
		c.Problem = fmt.Sprintf("%d files, checksum %.12s: want %d files, checksum %.12s", sum.Files, sum.Checksum, len(names), want)
		return c
	}
	c.DataIntact = true
	return c
}

// say prints an event's outcome.
func (d *demo) say(ev DemoEvent, st *Status) {
	moved := make([]string, 0, len(ev.Moved))
	for _, m := range ev.Moved {
		moved = append(moved, fmt.Sprintf("%s (%s) %s → %s", m.Service, m.Type, m.From, m.To))
	}
	if len(moved) == 0 {
		moved = append(moved, "nothing")
	}
	d.h.Say("  detected after %d ms, every service healthy after %d ms; moved: %s", ev.DetectedMs, ev.RecoveredMs, strings.Join(moved, ", "))
	for _, c := range ev.State {
		what := fmt.Sprintf("%d files", c.Files)
		if c.Type == ContainerMySQL {
			what = fmt.Sprintf("%d rows", c.Rows)
		}
		line := fmt.Sprintf("  %-10s on %-9s %s, checksum %.12s, intact: %v", c.Service, c.Target, what, c.Checksum, c.DataIntact)
		if c.RowsLost > 0 {
			line += fmt.Sprintf(" (restored from the last snapshot; %d rows written after it lost)", c.RowsLost)
		}
		if c.Problem != "" {
			line += ": " + c.Problem
		}
		d.h.Say("%s", line)
	}
	if ev.Event == "crash" {
		d.h.Say("  the crash lost %d rows, of the %d written after the last snapshot the coordinator completed (schedule %s): the loss --snapshot allows",
			ev.RowsLost, ev.RowsWrittenAfterSnapshot, d.report.SnapshotSchedule)
	}
	d.h.Say("  placement:%s", st.Placement(WebSystemServiceNames()))
}
