package testbed

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

func TestLoadMachines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	infra := filepath.Join(dir, "machines.json")
	os.WriteFile(infra, []byte(`{"b": {"properties": {"mem": 1}}, "a": {"properties": {"zone": "x"}}}`), 0o644)
	for _, tc := range []struct {
		name, file string
		n          int
		names      []string
		err        string
	}{
		{"numbered", "", 3, []string{"machine1", "machine2", "machine3"}, ""},
		{"from a model", infra, 9, []string{"a", "b"}, ""},
		{"missing", filepath.Join(dir, "nope.json"), 1, nil, "nope.json"},
	} {
		names, props, err := LoadMachines(tc.file, tc.n)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Fatalf("%s: error %v, want %q", tc.name, err, tc.err)
		}
		if err == nil && !reflect.DeepEqual(names, tc.names) {
			t.Errorf("%s: names %v, want %v", tc.name, names, tc.names)
		}
		if tc.file == infra && props["a"]["zone"] != "x" {
			t.Errorf("%s: properties %v", tc.name, props)
		}
	}
}

func TestLoadMachineProperties(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("properties: {zone: x}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("zone: x\n"), 0o644)
	if p, err := LoadMachineProperties(good); err != nil || p["zone"] != "x" {
		t.Errorf("good: %v %v", p, err)
	}
	if _, err := LoadMachineProperties(bad); err == nil || !strings.Contains(err.Error(), `bad.yaml: expected {"properties": {...}}`) {
		t.Errorf("bad: %v", err)
	}
}

func TestPrintMachines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	PrintMachines(&b, []MachineInfo{
		{Name: "m1", Address: "10.0.0.2", Running: true, Properties: map[string]any{"zone": "x"}},
		{Name: "m2", Address: "10.0.0.3"},
		{Name: "m3", Address: "10.0.0.4", Running: true, Partition: true},
	})
	want := "MACHINE      ADDRESS        STATE    PROPERTIES\n" +
		"m1           10.0.0.2       running  {\"zone\":\"x\"}\n" +
		"m2           10.0.0.3       stopped  null\n" +
		"m3           10.0.0.4       cut-off  null\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestEnterArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		same bool
		want []string
	}{
		{"root: the namespaces are the host's", true, []string{"ip", "netns", "exec", "ns1", "sh", "-c", "x"}},
		{"without root: through the daemon's user and mount namespaces", false,
			[]string{"nsenter", "--target", "42", "--user", "--mount", "--preserve-credentials", "--", "ip", "netns", "exec", "ns1", "sh", "-c", "x"}},
	} {
		if got := enterArgs("ns1", 42, tc.same, []string{"sh", "-c", "x"}); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := EnterCommand(&Response{Machines: []MachineInfo{{Name: "m1", Netns: "ns1"}}}, "m2", nil); err == nil || !strings.Contains(err.Error(), "no machine m2") {
		t.Errorf("unknown machine: %v", err)
	}
}

// TestStartDaemonWaitsForTheDaemon: up has no fixed deadline; it ends when
// the daemon answers, exits (with its log) or the caller gives up (the
// daemon is then killed).
func TestStartDaemonWaitsForTheDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := StartDaemon(context.Background(), dir, exec.Command("sh", "-c", "echo cannot create namespaces; exit 3"), 1)
	if err == nil || !strings.Contains(err.Error(), "cannot create namespaces") {
		t.Errorf("a daemon that exits: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.Command("sh", "-c", "echo started; exec sleep 600")
	done := make(chan error, 1)
	go func() { _, err := StartDaemon(ctx, dir, cmd, 1); done <- err }()
	testenv.Eventually(t, time.Minute, func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "testbed.log"))
		return strings.Contains(string(log), "started")
	}, "the daemon did not start")
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("cancelled: %v", err)
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err == nil {
		t.Errorf("the daemon still runs after the cancelled start")
	}
}
