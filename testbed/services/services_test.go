package services

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// binDir holds the example programs, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dydisnix-services-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running example service.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeContext writes a DYDISNIX_CONTEXT document as the agent does.
func writeContext(t *testing.T, v map[string]any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "context.json")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs program with exactly env (plus PATH). The process is stopped
// with SIGTERM at the end of the test, which must make it exit 0.
func start(t *testing.T, program string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, program))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{name: env["DYDISNIX_SERVICE"], cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", p.name, err, p.out)
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit; nil means exit status 0.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("still running a minute after SIGTERM")
	}
}

var client = &http.Client{Timeout: 3 * time.Second}

func get(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func do(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// lazy formats as what its function returns when a message is printed.
type lazy func() string

func (l lazy) String() string { return l() }

// eventually polls cond (an external process gives no other signal) until
// it holds; it fails at once when one of the processes p exits, and with
// their output after a generous deadline.
func eventually(t *testing.T, what string, p []*proc, cond func() (bool, string)) {
	t.Helper()
	var last string
	testenv.Eventually(t, time.Minute, func() bool {
		for _, q := range p {
			select {
			case <-q.done:
				t.Fatalf("%s exited while waiting for %s: %v\n%s", q.name, what, q.err, q.out)
			default:
			}
		}
		ok, info := cond()
		last = info
		return ok
	}, "%s (last: %s)\n%s", what, lazy(func() string { return last }), lazy(func() string {
		var logs strings.Builder
		for _, q := range p {
			fmt.Fprintf(&logs, "--- %s\n%s", q.name, q.out)
		}
		return logs.String()
	}))
}

func healthy(base string) func() (bool, string) {
	return func() (bool, string) {
		code, body, err := get(base + "/healthz")
		return err == nil && code == 200, fmt.Sprint(code, body, err)
	}
}

// checksum computes the store checksum independently of the kvstore code:
// for each key in sorted order uvarint(len) key uvarint(len) value.
func checksum(kv map[string]string) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write(binary.AppendUvarint(nil, uint64(len(k))))
		h.Write([]byte(k))
		h.Write(binary.AppendUvarint(nil, uint64(len(kv[k]))))
		h.Write([]byte(kv[k]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func kvEnv(t *testing.T, port int, state string) map[string]string {
	return map[string]string{
		"DYDISNIX_SERVICE":   "kvstore",
		"DYDISNIX_TARGET":    "test1",
		"DYDISNIX_STATE_DIR": state,
		"DYDISNIX_PROP_PORT": strconv.Itoa(port),
		"DYDISNIX_PROP_HOST": "127.0.0.1",
		"DYDISNIX_CONTEXT": writeContext(t, map[string]any{
			"service": "kvstore", "target": "test1", "properties": map[string]any{"port": port},
			"dependsOn": map[string]any{}, "connectsTo": map[string]any{},
		}),
	}
}

func TestKVStorePersistsAcrossRestart(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	port := testenv.Port(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := start(t, "kvstore", kvEnv(t, port, state))
	eventually(t, "kvstore healthy", []*proc{p}, healthy(base))

	want := map[string]string{}
	for i := 0; i < 40; i++ {
		k, v := fmt.Sprintf("key/%02d", i), strings.Repeat(fmt.Sprint(i), i)
		if code := do(t, http.MethodPut, base+"/kv/"+k, v); code != http.StatusNoContent {
			t.Fatalf("PUT %s: status %d", k, code)
		}
		want[k] = v
	}
	do(t, http.MethodPut, base+"/kv/key/00", "overwritten")
	want["key/00"] = "overwritten"
	do(t, http.MethodDelete, base+"/kv/key/01", "")
	delete(want, "key/01")

	code, sum, err := get(base + "/checksum")
	if err != nil || code != 200 {
		t.Fatalf("checksum: %d %v", code, err)
	}
	if strings.TrimSpace(sum) != checksum(want) {
		t.Fatalf("checksum %s, want %s", sum, checksum(want))
	}
	if err := p.stop(); err != nil {
		t.Fatalf("kvstore did not exit cleanly on SIGTERM: %v\n%s", err, p.out)
	}

	// Restart on the same state directory (a new port, as after a move).
	port2 := testenv.Port(t)
	base2 := fmt.Sprintf("http://127.0.0.1:%d", port2)
	p2 := start(t, "kvstore", kvEnv(t, port2, state))
	eventually(t, "kvstore healthy after restart", []*proc{p2}, healthy(base2))
	if code, sum2, _ := get(base2 + "/checksum"); code != 200 || strings.TrimSpace(sum2) != strings.TrimSpace(sum) {
		t.Errorf("checksum after restart %q (status %d), want %q", sum2, code, sum)
	}
	for k, v := range want {
		if code, got, _ := get(base2 + "/kv/" + k); code != 200 || got != v {
			t.Errorf("GET %s after restart = %d %q, want %q", k, code, got, v)
		}
	}
	if code, _, _ := get(base2 + "/kv/key/01"); code != http.StatusNotFound {
		t.Errorf("deleted key: status %d, want 404", code)
	}
	var keys []string
	_, body, _ := get(base2 + "/kv/")
	if err := json.Unmarshal([]byte(body), &keys); err != nil || len(keys) != len(want) {
		t.Errorf("GET /kv/ = %s (%v), want %d keys", body, err, len(want))
	}
}

func TestKVStoreRefusesToStartWithoutStateOrPort(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"no state dir": {"DYDISNIX_PROP_PORT": "1"},
		"no port":      {"DYDISNIX_STATE_DIR": t.TempDir()},
		"bad port":     {"DYDISNIX_STATE_DIR": t.TempDir(), "DYDISNIX_PROP_PORT": "http"},
	}
	for name, env := range cases {
		cmd := exec.Command(filepath.Join(binDir, "kvstore"))
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s: exit %v, want status 1\n%s", name, err, out)
		}
		if !strings.Contains(string(out), "DYDISNIX_") {
			t.Errorf("%s: message does not name the variable: %s", name, out)
		}
	}
}

func TestWebfrontProxiesToStore(t *testing.T) {
	t.Parallel()
	kvPort, webPort := testenv.Port(t), testenv.Port(t)
	kv := start(t, "kvstore", kvEnv(t, kvPort, t.TempDir()))
	kvBase := fmt.Sprintf("http://127.0.0.1:%d", kvPort)
	webBase := fmt.Sprintf("http://127.0.0.1:%d", webPort)
	gate := filepath.Join(t.TempDir(), "gate")
	// The environment the agent gives a service with dependsOn = [kvstore]:
	// DYDISNIX_DEP_KVSTORE_TARGET is the host of the store's target.
	web := start(t, "webfront", map[string]string{
		"DYDISNIX_SERVICE":                "webfront",
		"DYDISNIX_TARGET":                 "test2",
		"DYDISNIX_STATE_DIR":              t.TempDir(),
		"DYDISNIX_PROP_PORT":              strconv.Itoa(webPort),
		"DYDISNIX_PROP_BIND":              "127.0.0.1",
		"DYDISNIX_DEP_KVSTORE_TARGET":     "127.0.0.1",
		"DYDISNIX_DEP_KVSTORE_TARGETNAME": "test1",
		"DYDISNIX_DEP_KVSTORE_PORT":       strconv.Itoa(kvPort),
		"DYDISNIX_DEP_KVSTORE_STATEFUL":   "true",
		"DYDISNIX_PROP_HEALTHGATE":        gate,
	})
	// Closed health gate: unhealthy although the store answers.
	eventually(t, "webfront listening", []*proc{kv, web}, func() (bool, string) {
		code, body, err := get(webBase + "/healthz")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "health gate"), fmt.Sprint(code, body, err)
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "webfront healthy", []*proc{kv, web}, healthy(webBase))

	if code := do(t, http.MethodPut, webBase+"/kv/greeting", "hello"); code != http.StatusNoContent {
		t.Fatalf("PUT through webfront: %d", code)
	}
	if code, v, _ := get(kvBase + "/kv/greeting"); code != 200 || v != "hello" {
		t.Errorf("store has %d %q, want hello", code, v)
	}
	if code, v, _ := get(webBase + "/kv/greeting"); code != 200 || v != "hello" {
		t.Errorf("GET through webfront %d %q", code, v)
	}
	_, s1, _ := get(kvBase + "/checksum")
	if code, s2, _ := get(webBase + "/checksum"); code != 200 || s1 != s2 {
		t.Errorf("checksum through webfront %q, store %q", s2, s1)
	}

	// The store goes away: webfront stays up and says so.
	if err := kv.stop(); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(webBase + "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz without store: %d, want 503", code)
	}
	if code, _, _ := get(webBase + "/kv/greeting"); code != http.StatusBadGateway {
		t.Errorf("proxy without store: %d, want 502", code)
	}
}

type peerStatus struct {
	Service     string `json:"service"`
	Peer        string `json:"peer"`
	Successes   int    `json:"successes"`
	Failures    int    `json:"failures"`
	PeerService string `json:"peerService"`
}

func peerEnv(t *testing.T, self, peer string, port, peerPort int) map[string]string {
	enc := strings.ToUpper(peer)
	return map[string]string{
		"DYDISNIX_SERVICE":                  self,
		"DYDISNIX_TARGET":                   "t-" + self,
		"DYDISNIX_PROP_PORT":                strconv.Itoa(port),
		"DYDISNIX_PROP_HOST":                "127.0.0.1",
		"DYDISNIX_PROP_INTERVAL":            "50",
		"DYDISNIX_DEP_" + enc + "_TARGET":   "t-" + peer, // a target name that does not resolve...
		"DYDISNIX_DEP_" + enc + "_PORT":     strconv.Itoa(peerPort),
		"DYDISNIX_DEP_" + enc + "_INTERVAL": "50",
		// ...but the context says where it is: connectsTo.<peer>.targets[0].host.
		"DYDISNIX_CONTEXT": writeContext(t, map[string]any{
			"service": self, "target": "t-" + self,
			"dependsOn": map[string]any{},
			"connectsTo": map[string]any{peer: map[string]any{
				"name": peer, "properties": map[string]any{"port": peerPort},
				"targets": []any{map[string]any{"target": "t-" + peer, "host": "127.0.0.1"}},
			}},
		}),
	}
}

func peerStat(base string) (peerStatus, error) {
	var st peerStatus
	code, body, err := get(base + "/status")
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("status %d", code)
	}
	return st, json.Unmarshal([]byte(body), &st)
}

func TestPeersPingEachOther(t *testing.T) {
	t.Parallel()
	pa, pb := testenv.Port(t), testenv.Port(t)
	baseA, baseB := fmt.Sprintf("http://127.0.0.1:%d", pa), fmt.Sprintf("http://127.0.0.1:%d", pb)
	a := start(t, "peer", peerEnv(t, "peerA", "peerB", pa, pb))
	// peerB is absent: peerA runs, is healthy, and counts failures.
	eventually(t, "peerA notices peerB is absent", []*proc{a}, func() (bool, string) {
		st, err := peerStat(baseA)
		return err == nil && st.Failures > 0, fmt.Sprint(st, err)
	})
	if code, _, _ := get(baseA + "/healthz"); code != 200 {
		t.Errorf("peerA unhealthy without its peer: %d", code)
	}
	b := start(t, "peer", peerEnv(t, "peerB", "peerA", pb, pa))
	for _, c := range []struct{ base, self, peer string }{{baseA, "peerA", "peerB"}, {baseB, "peerB", "peerA"}} {
		eventually(t, c.self+" reaches "+c.peer, []*proc{a, b}, func() (bool, string) {
			st, err := peerStat(c.base)
			return err == nil && st.Successes > 0 && st.PeerService == c.peer && st.Service == c.self, fmt.Sprint(st, err)
		})
	}
	code, body, _ := get(baseB + "/ping")
	if code != 200 || !strings.Contains(body, `"peerB"`) {
		t.Errorf("/ping = %d %s", code, body)
	}
}

type chordNode struct {
	ID   uint64 `json:"id"`
	Addr string `json:"addr"`
}

type chordState struct {
	Self        chordNode  `json:"self"`
	Successor   chordNode  `json:"successor"`
	Predecessor *chordNode `json:"predecessor"`
	Joined      bool       `json:"joined"`
}

type chordRing struct {
	Nodes    []chordNode `json:"nodes"`
	Complete bool        `json:"complete"`
}

func TestChordRingForms(t *testing.T) {
	t.Parallel()
	boot := testenv.Port(t)
	common := func(name string, port int) map[string]string {
		return map[string]string{
			"DYDISNIX_SERVICE":       name,
			"DYDISNIX_TARGET":        "test1",
			"DYDISNIX_PROP_PORT":     strconv.Itoa(port),
			"DYDISNIX_PROP_HOST":     "127.0.0.1",
			"DYDISNIX_PROP_INTERVAL": "40ms",
		}
	}
	procs := []*proc{start(t, "chord", common("chordBootstrap", boot))}
	bases := []string{fmt.Sprintf("http://127.0.0.1:%d", boot)}
	eventually(t, "bootstrap healthy", procs, healthy(bases[0]))
	for i := 1; i <= 3; i++ {
		port := testenv.Port(t)
		env := common(fmt.Sprintf("chordNode%d", i), port)
		env["DYDISNIX_DEP_CHORDBOOTSTRAP_TARGET"] = "127.0.0.1"
		env["DYDISNIX_DEP_CHORDBOOTSTRAP_PORT"] = strconv.Itoa(boot)
		procs = append(procs, start(t, "chord", env))
		bases = append(bases, fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	// Every node walks the same complete ring of 4, in identifier order.
	for _, base := range bases {
		eventually(t, "ring of 4 seen from "+base, procs, func() (bool, string) {
			code, body, err := get(base + "/ring")
			if err != nil || code != 200 {
				return false, fmt.Sprint(code, err)
			}
			var r chordRing
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				return false, err.Error()
			}
			if !r.Complete || len(r.Nodes) != 4 {
				return false, body
			}
			// Clockwise order: exactly one wrap-around in the identifiers.
			wraps := 0
			for i := range r.Nodes {
				if r.Nodes[(i+1)%4].ID <= r.Nodes[i].ID {
					wraps++
				}
			}
			return wraps == 1, body
		})
	}
	// Successor and predecessor pointers agree.
	states := map[string]chordState{}
	for _, base := range bases {
		_, body, _ := get(base + "/state")
		var st chordState
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		states[st.Self.Addr] = st
	}
	eventually(t, "predecessors consistent", procs, func() (bool, string) {
		for _, base := range bases {
			_, body, _ := get(base + "/state")
			var st chordState
			json.Unmarshal([]byte(body), &st)
			succ := st.Successor.Addr
			var ss chordState
			_, b2, _ := get("http://" + succ + "/state")
			json.Unmarshal([]byte(b2), &ss)
			if ss.Predecessor == nil || ss.Predecessor.Addr != st.Self.Addr {
				return false, fmt.Sprintf("%s → %s, whose predecessor is %v", st.Self.Addr, succ, ss.Predecessor)
			}
		}
		return true, ""
	})
}
