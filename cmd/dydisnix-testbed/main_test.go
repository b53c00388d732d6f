package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/testbed"
	"github.com/dydisnix/dydisnix/testbed/services"
)

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"--help"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"crash"}, 2},
		{[]string{"up", "--no-such-flag"}, 2},
		{[]string{"exec", "machine1"}, 2},
		{[]string{"up", "-s", "services.yaml"}, 2},
		{[]string{"up", "--standby", "--etcd", "1"}, 2},
		{[]string{"up", "--coordinator", "--standby"}, 2},
		{[]string{"shell"}, 2},
		{[]string{"list", "extra"}, 2},
		{[]string{"crash", "machine1", "extra"}, 2},
	} {
		var out, errb bytes.Buffer
		if got := run(tc.args, &out, &errb); got != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, got, tc.code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if got := run([]string{"list", "--dir", t.TempDir()}, &out, &errb); got != 1 || !strings.Contains(errb.String(), "no testbed runs") {
		t.Errorf("list without a testbed: exit %d, %s", got, errb.String())
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildAll compiles this command, the agent, the loop and the example
// services into one directory, once per test binary.
func buildAll(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for network namespaces (CI runs as root)")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "dydisnix-testbed-bin-"); buildErr != nil {
			return
		}
		for _, p := range [][2]string{{"", "."}, {"", "../dydisnix-agent"}, {"", "../dydisnix-self-adapt"},
			{"examples", "../../testbed/services/kvstore"}, {"examples", "../../testbed/services/webfront"},
			{"examples", "../../testbed/services/peer"}, {"examples", "../../testbed/services/chord"},
			{"examples", "../../testbed/services/webapp"}} {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, p[0])+"/", p[1]).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v: %s", p[1], err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// tool runs the built dydisnix-testbed on the testbed in dir.
func tool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "dydisnix-testbed"), append([]string{"--dir", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dydisnix-testbed %v: %v: %s", args, err, out)
	}
	return string(out)
}

// TestDaemonLifecycle runs the real command: up starts a background
// testbed of real agents in namespaces, crash and partition act on it, and
// down deletes every namespace.
func TestDaemonLifecycle(t *testing.T) {
	bin := buildAll(t)
	dir := t.TempDir()
	tool := func(args ...string) string { t.Helper(); return tool(t, dir, args...) }
	t.Cleanup(func() { exec.Command(filepath.Join(bin, "dydisnix-testbed"), "down", "--dir", dir).Run() })
	// What an earlier testbed in dir left must not come back (issue 14).
	marker := filepath.Join(dir, "machines", "machine1", "state", "left-by-an-earlier-run")
	os.MkdirAll(filepath.Dir(marker), 0o755)
	os.WriteFile(marker, nil, 0o644)
	out := tool("up", "-n", "2")
	if !strings.Contains(out, "machine1") || !strings.Contains(out, "machine2") {
		t.Fatalf("up: %s", out)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("up kept the state of the earlier testbed: %v", err)
	}
	if out := tool("exec", "machine2", "--", "ip", "-br", "addr"); !strings.Contains(out, "10.231.0.") {
		t.Errorf("exec machine2 -- ip -br addr: %s", out)
	}
	out = tool("crash", "machine1")
	if !strings.Contains(out, "machine1") || !strings.Contains(out, "stopped") {
		t.Fatalf("crash: %s", out)
	}
	out = tool("partition", "machine2")
	if !strings.Contains(out, "cut-off") {
		t.Fatalf("partition: %s", out)
	}
	tool("heal", "machine2")
	out = tool("add", "extra")
	if !strings.Contains(out, "extra") {
		t.Fatalf("add: %s", out)
	}
	// this testbed's namespaces (other testbeds may run beside it)
	resp, err := testbed.Call(dir, testbed.Request{Op: "list"})
	if err != nil || len(resp.Machines) == 0 {
		t.Fatalf("list: %v %+v", err, resp)
	}
	os.WriteFile(marker, nil, 0o644)
	tool("down")
	ns, _ := exec.Command("ip", "netns", "list").Output()
	for _, m := range resp.Machines {
		for _, line := range strings.Split(string(ns), "\n") {
			if f := strings.Fields(line); m.Netns != "" && len(f) > 0 && f[0] == m.Netns {
				t.Errorf("namespace %s of %s left after down", m.Netns, m.Name)
			}
		}
	}
}

// TestDaemonKeepState: up --keep-state keeps what the last testbed left.
func TestDaemonKeepState(t *testing.T) {
	buildAll(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "machines", "machine1", "state", "kept")
	os.MkdirAll(filepath.Dir(marker), 0o755)
	os.WriteFile(marker, nil, 0o644)
	t.Cleanup(func() { exec.Command(filepath.Join(binDir, "dydisnix-testbed"), "down", "--dir", dir).Run() })
	tool(t, dir, "up", "-n", "1", "--keep-state")
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("up --keep-state: %v", err)
	}
	tool(t, dir, "down")
}

// TestUpCoordinator: up --coordinator runs the loop on the example system
// with its status page forwarded to a port of the host, the coordinator's
// namespace can be entered, and down closes the page.
func TestUpCoordinator(t *testing.T) {
	buildAll(t)
	dir := t.TempDir()
	t.Cleanup(func() { exec.Command(filepath.Join(binDir, "dydisnix-testbed"), "down", "--dir", dir).Run() })
	out := tool(t, dir, "up", "-n", "2", "--coordinator", "--status-port", "0")
	m := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up --coordinator printed no status page on the host:\n%s", out)
	}
	url := m[1]
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get(url + path)
		if err != nil {
			t.Fatalf("GET %s%s from the host: %v", url, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(""); code != http.StatusOK || !strings.Contains(body, "dydisnix") {
		t.Fatalf("GET %s: %d\n%s", url, code, body)
	}
	// The loop deploys the example system onto the machines.
	var last string
	testenv.Eventually(t, 2*time.Minute, func() bool {
		_, body := get("status")
		var st struct {
			LastDeploy *struct{ Result string } `json:"lastDeploy"`
		}
		json.Unmarshal([]byte(body), &st)
		last = body
		return st.LastDeploy != nil && st.LastDeploy.Result == "success"
	}, "no successful deploy; last /status: %s", lazy(func() string { return last }))
	if out := tool(t, dir, "exec", "coordinator", "--", "ip", "-br", "addr"); !strings.Contains(out, "10.231.0.2/") {
		t.Errorf("exec coordinator: %s", out)
	}
	if out := tool(t, dir, "list"); !strings.Contains(out, url) {
		t.Errorf("list does not show the status page %s:\n%s", url, out)
	}
	tool(t, dir, "down")
	if _, err := client.Get(url); err == nil {
		t.Errorf("the status page %s still answers after down", url)
	}
}

// TestUpStandby: up --etcd 1 --coordinator --standby runs two coordinators
// that elect a leader: the page forwarded to the host is the first's, which
// leads and deploys; the second stands by behind it.
func TestUpStandby(t *testing.T) {
	buildAll(t)
	dir := t.TempDir()
	t.Cleanup(func() { exec.Command(filepath.Join(binDir, "dydisnix-testbed"), "down", "--dir", dir).Run() })
	out := tool(t, dir, "up", "-n", "1", "--etcd", "1", "--coordinator", "--standby", "--status-port", "0")
	m := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up printed no status page on the host:\n%s", out)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var leader struct {
		Leading bool   `json:"leading"`
		Name    string `json:"name"`
	}
	testenv.Eventually(t, time.Minute, func() bool {
		resp, err := client.Get(m[1] + "status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Leader *struct {
				Leading bool   `json:"leading"`
				Name    string `json:"name"`
			} `json:"leader"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Leader == nil {
			return false
		}
		leader.Leading, leader.Name = st.Leader.Leading, st.Leader.Name
		return leader.Leading
	}, "the first coordinator leads")
	testenv.Eventually(t, time.Minute, func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "coordinator2", "self-adapt.log"))
		return strings.Contains(string(log), `"msg":"leadership","leading":false,"leader":"`+leader.Name+`"`)
	}, "the second coordinator stands by behind %s", leader.Name)
	tool(t, dir, "down")
}

// lazy is a message part computed when it is printed.
type lazy func() string

func (f lazy) String() string { return f() }

// TestDemoPageOnHost: the demo prints a status page reachable from the
// host, and --keep-running keeps it until interrupted.
func TestDemoPageOnHost(t *testing.T) {
	buildAll(t)
	if err := testbed.CheckContainers([]string{testbed.ContainerMySQL}); err != nil {
		testenv.Missing(t, "the demo's machines run MariaDB: %v", err)
	}
	cmd := exec.Command(filepath.Join(binDir, "dydisnix-testbed"), "demo", "--keep-running", "--status-port", "0", "--dir", t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pageRE := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/)`)
	var url string
	var story strings.Builder
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		story.WriteString(lines.Text() + "\n")
		if m := pageRE.FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
		if strings.Contains(lines.Text(), "Still running") {
			break
		}
	}
	if url == "" || !strings.Contains(story.String(), "Still running") {
		t.Fatalf("the demo did not print its page and keep running:\n%s%s", story.String(), stderr.String())
	}
	resp, err := http.Get(url + "status")
	if err != nil {
		t.Fatalf("GET %sstatus from the host: %v", url, err)
	}
	var st struct{ LastDeploy *struct{ Seq int } }
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.LastDeploy == nil || st.LastDeploy.Seq < 4 {
		t.Errorf("the page after the demo's four deploys shows %+v", st.LastDeploy)
	}
	cmd.Process.Signal(syscall.SIGINT)
	go io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Errorf("demo after Ctrl-C: %v\n%s", err, stderr.String())
	}
}

// TestUpWebSystem: up --containers mysql-database gives every machine a
// MariaDB server; with --coordinator and no -a, the loop gets the servers'
// password by augmentation (never announced) and deploys the web system:
// its databases through the mysql-database module, its applications
// healthy only once they reach their databases.
func TestUpWebSystem(t *testing.T) {
	buildAll(t)
	if err := testbed.CheckContainers([]string{testbed.ContainerMySQL}); err != nil {
		testenv.Missing(t, "the machines run MariaDB: %v", err)
	}
	dir := t.TempDir()
	comps := filepath.Join(t.TempDir(), "components")
	if err := services.WriteWebSystemComponents(comps); err != nil {
		t.Fatal(err)
	}
	model, _ := json.Marshal(testbed.WebSystemModel(binDir, comps))
	svcFile := filepath.Join(t.TempDir(), "services.json")
	if err := os.WriteFile(svcFile, model, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command(filepath.Join(binDir, "dydisnix-testbed"), "down", "--dir", dir).Run() })
	out := tool(t, dir, "up", "-n", "2", "--containers", "mysql-database", "--coordinator", "-s", svcFile, "--status-port", "0")
	m := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up printed no status page:\n%s", out)
	}
	pw, err := os.ReadFile(filepath.Join(dir, "mysql-password"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "machines", "machine1", "properties.json"), filepath.Join(dir, "testbed.log")} {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), strings.TrimSpace(string(pw))) {
			t.Errorf("%s holds the MariaDB password", f)
		}
	}
	if !strings.Contains(out, "mysql-database") {
		t.Errorf("up does not list mysql-database among the machines' types:\n%s", out)
	}
	var last string
	testenv.Eventually(t, 2*time.Minute, func() bool {
		resp, err := http.Get(m[1] + "status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var st struct {
			LastDeploy *struct{ Result string } `json:"lastDeploy"`
		}
		json.Unmarshal(body, &st)
		last = string(body)
		return st.LastDeploy != nil && st.LastDeploy.Result == "success"
	}, "no successful deploy of the web system; last /status: %s", lazy(func() string { return last }))
	// The databases exist on the machines' servers.
	var dbs []string
	for _, name := range []string{"machine1", "machine2"} {
		out := tool(t, dir, "exec", name, "--", "mysql", "--socket="+filepath.Join(dir, "machines", name, "mysql", "mysqld.sock"),
			"--user=root", "--password="+strings.TrimSpace(string(pw)), "-N", "-B", "-e", "SHOW DATABASES")
		dbs = append(dbs, strings.Fields(out)...)
	}
	for _, db := range services.WebSystemDatabases {
		if !slices.Contains(dbs, db) {
			t.Errorf("database %s on no machine's server (they hold %v)", db, dbs)
		}
	}
	tool(t, dir, "down")
}
