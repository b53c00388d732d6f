package testbed

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// The fault matrix (issue 11, docs/reliability.md): every step kind of a
// transition that moves a stateful service, each with four faults
// injected while that step is in flight. The injection is synchronised on
// the agent's test-only fault hook (deployer/agent/fault.go): the step's
// request blocks on the agent until the test has applied the fault, or
// fails.

// faultSites are the site of each machine of the fault testbed; a
// service's "site" picks its machine, "both" fits either.
var faultSites = map[string][]any{"machine1": {"a", "both"}, "machine2": {"b", "both"}}

const faultPolicy = `steps:
  - filter: mapAttrOnList
    serviceProperty: site
    targetPropertyList: sites
  - filter: preferPrevious
  - filter: divideRoundRobin
`

// faultStep is one step kind and where its fault is injected: the hook
// operation and whether the victim is the service's old target (else its
// new one).
type faultStep struct {
	kind, op string
	onOld    bool
}

var faultSteps = []faultStep{
	{"lock", agent.FaultLock, false},
	{"upload", agent.FaultUpload, false},
	{"deactivate", agent.FaultDeactivate, true},
	{"snapshot", agent.FaultSnapshot, true},
	{"transfer", agent.FaultTransfer, false},
	{"restore", agent.FaultRestore, false},
	{"activate", agent.FaultActivate, false},
	{"unlock", agent.FaultUnlock, false},
	// The generation is saved by the coordinator right after the last
	// unlock: the fault hits once that unlock has taken effect on the
	// agent, before its answer (and so before the save).
	{"save", agent.FaultUnlockDone, false},
}

var faultKinds = []string{"agent-kill", "partition", "coordinator-kill", "fail"}

// faultResult is one cell of the matrix.
type faultResult struct {
	step, fault string
	outcome     string
	failed      int           // deploys that failed before convergence
	cut         time.Duration // how long the partition lasted
	converge    time.Duration
	err         error
}

// convergeBound is how soon after a fault ends the coordinator must have
// converged (issue 11).
const convergeBound = 10 * time.Second

func faultServices(binDir, kvSite string) map[string]any {
	all := DemoServicesModel(binDir)
	svcs := map[string]any{}
	for _, name := range []string{"kvstore", "webfront"} {
		s := all[name].(map[string]any)
		s["site"] = "both"
		svcs[name] = s
	}
	svcs["kvstore"].(map[string]any)["site"] = kvSite
	return svcs
}

func TestFaultMatrix(t *testing.T) {
	needRoot(t)
	bin := buildBinaries(t)
	dir := t.TempDir()
	faultDir := filepath.Join(dir, "faults")
	tb, err := New(Config{Dir: filepath.Join(dir, "testbed"), BinDir: bin, DrainTimeout: 5 * time.Second,
		AgentEnv: []string{agent.FaultDirEnv + "=" + filepath.Join(faultDir, "{machine}")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"machine1", "machine2"} {
		if err := os.MkdirAll(filepath.Join(faultDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		props := map[string]any{"hostname": name, "sites": faultSites[name], "supportedTypes": []any{"process"}}
		if _, err := tb.Add(name, props); err != nil {
			tb.Close()
			t.Fatal(err)
		}
	}
	cfg := HarnessConfig{Dir: filepath.Join(dir, "harness"), BinDir: bin, Services: faultServices(bin, "a"), Policy: faultPolicy,
		// Snapshots are taken by the transitions here; a periodic one
		// would consume an armed snapshot fault.
		LoopArgs: []string{"--snapshot-schedule", "@every 1h", "--stabilise", "1s"}}
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	h, err := AttachHarness(tb, cfg)
	if err != nil {
		tb.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coordinator log:\n%s", h.LoopLog(40))
		}
		h.Close()
	})
	if err := h.StartLoop(); err != nil {
		t.Fatal(err)
	}
	st := settle(t, h, 0, "")
	f := &faultRun{t: t, h: h, dir: faultDir, keys: map[string]string{}}
	f.put(st, "initial")
	var results []faultResult
	for _, step := range faultSteps {
		for _, fault := range faultKinds {
			name := step.kind + "/" + fault
			var r faultResult
			ran := false
			t.Run(name, func(t *testing.T) {
				ran = true
				f.t = t
				r = f.cell(step, fault)
				if r.err != nil {
					t.Errorf("%v\ncoordinator log:\n%s", r.err, h.LoopLog(25))
				}
			})
			if !ran { // left out by -run
				continue
			}
			results = append(results, r)
			f.t = t
			if r.err != nil && !f.recover() {
				t.Fatalf("the testbed did not recover after %s; the matrix stops", name)
			}
		}
	}
	t.Logf("fault matrix:\n%s", renderMatrix(results))
}

// faultRun is the state shared by the cells: the harness, the fault hook
// directory and the keys written so far (all must survive every cell).
type faultRun struct {
	t    *testing.T
	h    *Harness
	dir  string
	keys map[string]string
	// restores counts the coordinator's restores of kvstore from its
	// snapshot store (a machine it declared lost, e.g. probes starved on a
	// loaded host); lost counts the keys such restores legitimately lost
	// (written after the snapshot they restored).
	restores, lost int
}

// storeRestores counts the completed restores of kvstore from the
// coordinator's snapshot store in the loop's whole log.
func (f *faultRun) storeRestores() int {
	n := 0
	for _, l := range strings.Split(f.h.LoopLog(1<<30), "\n") {
		if strings.Contains(l, `"op":"restore-from-store"`) && strings.Contains(l, `"service":"kvstore"`) && strings.Contains(l, `"phase":"done"`) {
			n++
		}
	}
	return n
}

// put writes a key through the front end.
func (f *faultRun) put(st *Status, tag string) {
	f.t.Helper()
	k, v := "key-"+tag, "value of "+tag
	code, body, err := f.h.Do(http.MethodPut, st.TargetOf("webfront"), 7002, "/kv/"+k, v)
	if err != nil || code/100 != 2 {
		f.t.Fatalf("PUT %s: %d %s %v", k, code, body, err)
	}
	f.keys[k] = v
}

func (f *faultRun) hook(machine, op string) string { return filepath.Join(f.dir, machine, op) }

// cell runs one cell: it arms the fault, changes the model so that kvstore
// moves to the other machine, applies the fault when the step is in
// flight and waits for convergence.
func (f *faultRun) cell(step faultStep, fault string) faultResult {
	h := f.h
	r := faultResult{step: step.kind, fault: fault}
	st, err := h.Status()
	if err != nil {
		r.err = err
		return r
	}

	f.restores = f.storeRestores()
	lostBefore := f.lost
	f.put(st, fmt.Sprintf("%s-%s", step.kind, fault))
	from := st.TargetOf("kvstore")
	to, site := "machine2", "b"
	if from == "machine2" {
		to, site = "machine1", "a"
	}
	victim := to
	if step.onOld {
		victim = from
	}
	mode := "block"
	if fault == "fail" {
		mode = "fail"
	}
	hook := f.hook(victim, step.op)
	if err := os.WriteFile(hook, []byte(mode), 0o644); err != nil {
		r.err = err
		return r
	}
	defer os.Remove(hook)
	seq := st.Seq()
	logStart := logSize(h)
	svcs := faultServices(h.cfg.BinDir, site)
	if err := h.WriteServices(svcs); err != nil {
		r.err = err
		return r
	}
	h.SetServicesModel(svcs)
	marker := hook + ".held"
	if mode == "fail" {
		marker = hook + ".failed"
	}
	if !waitFile(h, marker, time.Minute) {
		r.err = fmt.Errorf("the %s step on %s was never reached (no %s)", step.kind, victim, filepath.Base(marker))
		return r
	}
	release := func() { os.Remove(marker) }
	defer release()
	after := seq
	switch fault {
	case "agent-kill":
		err = h.TB.KillAgent(victim)
		release()
		if err == nil {
			err = h.TB.Start(victim)
		}
	case "partition":
		err = h.TB.Partition(victim)
		release()
		if err == nil {
			// The partition lasts until the coordinator has noticed it:
			// the victim is lost to discovery or the transition ended.
			cutAt := time.Now()
			noticed := f.waitNoticed(seq, victim, 90*time.Second)
			err = h.TB.Heal(victim)
			if err == nil && !noticed {
				err = fmt.Errorf("the coordinator did not notice the partition of %s within 90 s", victim)
			}
			r.cut = time.Since(cutAt)
		}
	case "coordinator-kill":
		h.KillLoop()
		release()
		err = h.StartLoop("--reconstruct")
		after = 0
	case "fail":
	}
	if err != nil {
		r.err = fmt.Errorf("inject %s: %w", fault, err)
		return r
	}
	end := time.Now()
	st2, at, err := f.converged(after, to, 60*time.Second)
	r.converge = at.Sub(end)
	if err != nil {
		r.err = err
		r.outcome = "did not converge"
		return r
	}
	if f.lost > lostBefore {
		r.outcome = fmt.Sprintf("restored from the last snapshot (%d key(s) written after it lost)", f.lost-lostBefore)
	}
	failed := failedDeploys(h, logStart)
	for _, e := range failed {
		f.t.Logf("failed deploy: %s", e)
	}
	r.failed = len(failed)
	if r.outcome == "" {
		r.outcome = "new"
		if st2.TargetOf("kvstore") == from {
			r.outcome = "old"
		}
	}
	if r.converge > convergeBound {
		r.err = fmt.Errorf("converged %s after the fault ended, more than %s", r.converge.Round(100*time.Millisecond), convergeBound)
	}
	return r
}

// logSize is the size of the coordinator's log.
func logSize(h *Harness) int64 {
	fi, err := os.Stat(h.Path("self-adapt.log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// failedDeploys returns the errors of the failed (rolled back) deploys
// the coordinator logged after offset.
func failedDeploys(h *Harness, offset int64) []string {
	data, err := os.ReadFile(h.Path("self-adapt.log"))
	if err != nil || int64(len(data)) < offset {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data[offset:]), "\n") {
		var e struct{ Msg, Error string }
		if json.Unmarshal([]byte(line), &e) == nil && strings.HasPrefix(e.Msg, "redeploy failed") {
			out = append(out, e.Error)
		}
	}
	return out
}

// waitFile waits until a file exists (the agent's hook has fired).
func waitFile(h *Harness, file string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(file); err == nil {
			return true
		}
		select {
		case <-h.loopExited():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// waitNoticed waits until the coordinator has finished (or given up on)
// the deploy after seq, or no longer counts victim as discovered; false
// when neither happened within timeout.
func (f *faultRun) waitNoticed(seq int, victim string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := f.h.Status()
		if err == nil && (st.Seq() > seq || !slices.Contains(st.Discovered, victim)) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// converged waits until the system is exactly one configuration: the
// coordinator is idle after a successful deploy after seq with kvstore on
// want, every service runs exactly once, on the machine the coordinator
// placed it on, answers its health check, and every key written so far
// reads back. It returns when that was first seen.
func (f *faultRun) converged(seq int, want string, timeout time.Duration) (*Status, time.Time, error) {
	h := f.h
	deadline := time.Now().Add(timeout)
	last := "no status yet"
	for time.Now().Before(deadline) {
		select {
		case <-h.loopExited():
			return nil, time.Time{}, fmt.Errorf("dydisnix-self-adapt exited; its log ends:\n%s", h.LoopLog(15))
		case <-time.After(100 * time.Millisecond):
		}
		st, err := h.Status()
		if err != nil {
			last = err.Error()
			continue
		}
		if msg := f.consistent(st, seq, want); msg != "" {
			last = msg
			continue
		}
		return st, time.Now(), nil
	}
	return nil, time.Time{}, fmt.Errorf("not converged within %s: %s", timeout, last)
}

// consistent says what is still wrong ("" when nothing).
func (f *faultRun) consistent(st *Status, seq int, want string) string {
	h := f.h
	switch {
	case st.Seq() <= seq || st.Phase != "idle":
		return fmt.Sprintf("phase %s, deploy #%d (waiting for one after #%d)", st.Phase, st.Seq(), seq)
	case st.LastDeploy.Result != "success":
		return "last deploy failed: " + st.LastDeploy.Error
	case st.TargetOf("kvstore") != want:
		return fmt.Sprintf("kvstore is placed on %q, want %s", st.TargetOf("kvstore"), want)
	}
	procs := h.ServiceProcesses()
	for s, where := range procs {
		if p := st.TargetOf(s); len(where) != 1 || where[0] != p {
			return fmt.Sprintf("service %s runs on %v, want exactly once on %q", s, where, p)
		}
	}
	for s, port := range h.ServicePorts() {
		if len(procs[s]) == 0 {
			return fmt.Sprintf("service %s runs nowhere", s)
		}
		if err := h.Healthy(st.TargetOf(s), port); err != nil {
			return fmt.Sprintf("%s: %v", s, err)
		}
	}
	keys := make([]string, 0, len(f.keys))
	for k := range f.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var missing []string
	for _, k := range keys {
		code, got, err := h.Get(st.TargetOf("kvstore"), 7001, "/kv/"+k)
		if err == nil && code == http.StatusNotFound {
			missing = append(missing, k)
			continue
		}
		if err != nil || code != http.StatusOK || got != f.keys[k] {
			return fmt.Sprintf("key %s reads %d %q %v, want %q", k, code, got, err, f.keys[k])
		}
	}
	if len(missing) > 0 {
		// Intact, or restored from the last snapshot: keys may be missing
		// only when the coordinator restored kvstore from its store since
		// the last check, and then only keys written after that snapshot
		// (the newest ones; the others read back above).
		if n := f.storeRestores(); n > f.restores {
			f.restores = n
			f.lost += len(missing)
			for _, k := range missing {
				f.t.Logf("key %s lost: kvstore was restored from the coordinator's last snapshot", k)
				delete(f.keys, k)
			}
			return ""
		}
		return fmt.Sprintf("key %s is missing and kvstore was not restored from a snapshot", missing[0])
	}
	return ""
}

// recover brings the testbed back after a failed cell: every machine
// healed and running, the loop running, the system converged wherever
// kvstore is.
func (f *faultRun) recover() bool {
	h := f.h
	for _, m := range h.TB.Machines() {
		h.TB.Heal(m.Name)
		if !m.Running() {
			h.TB.Start(m.Name)
		}
		for _, op := range []string{agent.FaultLock, agent.FaultUnlock, agent.FaultUnlockDone, agent.FaultUpload, agent.FaultDeactivate,
			agent.FaultActivate, agent.FaultSnapshot, agent.FaultTransfer, agent.FaultRestore} {
			for _, sfx := range []string{"", ".held", ".failed"} {
				os.Remove(f.hook(m.Name, op) + sfx)
			}
		}
	}
	select {
	case <-h.loopExited():
		if err := h.StartLoop("--reconstruct"); err != nil {
			return false
		}
	default:
	}
	ok := false
	testenv.Eventually(f.t, 2*time.Minute, func() bool {
		st, err := h.Status()
		if err != nil {
			return false
		}
		ok = f.consistent(st, -1, st.TargetOf("kvstore")) == ""
		return ok
	}, "the testbed to recover")
	return ok
}

// renderMatrix renders the results as the Markdown table of
// docs/reliability.md.
func renderMatrix(rs []faultResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| step | %s |\n|---|%s\n", strings.Join(faultKinds, " | "), strings.Repeat("---|", len(faultKinds)))
	byStep := map[string][]faultResult{}
	var order []string
	for _, r := range rs {
		if _, ok := byStep[r.step]; !ok {
			order = append(order, r.step)
		}
		byStep[r.step] = append(byStep[r.step], r)
	}
	for _, s := range order {
		fmt.Fprintf(&b, "| %s |", s)
		for _, r := range byStep[s] {
			cell := fmt.Sprintf(" %s, %.1f s", r.outcome, r.converge.Seconds())
			if r.failed > 0 {
				cell = fmt.Sprintf(" %s after %d failed deploy(s), %.1f s", r.outcome, r.failed, r.converge.Seconds())
			}
			if r.cut > 0 {
				cell += fmt.Sprintf(" (cut %.1f s)", r.cut.Seconds())
			}
			if r.err != nil {
				var msg = r.err.Error()
				if i := strings.IndexByte(msg, '\n'); i >= 0 {
					msg = msg[:i]
				}
				cell = fmt.Sprintf(" **FAIL** (%s) %s", r.outcome, msg)
			}
			b.WriteString(cell + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
