package deployer_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/dbtest"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// benchAgent runs the real dydisnix-agent binary and returns its URL and process.
func benchAgent(b *testing.B, bin string) (string, *os.Process) {
	dir := b.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(testToken), 0o600)
	port := testenv.Port(b)
	cmd := exec.Command(bin, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--state-dir", filepath.Join(dir, "state"),
		"--token-file", tokFile, "--insecure-http", "--drain-timeout", "1s", "--max-upload", strconv.Itoa(4<<30), "--max-extract", strconv.Itoa(4<<30))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/health", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			break
		}
		if i > 400 {
			b.Fatal("agent did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	return url, cmd.Process
}

// procStatus returns a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatus(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	b.Fatalf("no %s", field)
	return 0
}

// BenchmarkMoveMySQLDatabase100MB moves a MariaDB database of about 100 MB
// between two real agents (each with its own MariaDB server): snapshot
// (mysqldump, gzip, streamed into the Dysnomia store), transfer through
// the coordinator's store, restore (streamed into mysql). It reports the
// move's time beside `mysqldump | mysql` between the same two servers,
// their ratio, and the agents' peak RSS (VmHWM): the dump streams, it is
// never held in memory whole. Run it with -benchtime 1x.
func BenchmarkMoveMySQLDatabase100MB(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "dydisnix-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/dydisnix-agent").CombinedOutput(); err != nil {
		b.Fatalf("build agent: %v\n%s", err, out)
	}
	db1, db2 := dbtest.MariaDB(b), dbtest.MariaDB(b)
	url1, p1 := benchAgent(b, bin)
	url2, p2 := benchAgent(b, bin)
	c := &cluster{agents: map[string]*testAgent{}, infra: model.Infrastructure{
		"t1": {Name: "t1", Properties: map[string]any{"agentURL": url1}, Extra: map[string]any{}},
		"t2": {Name: "t2", Properties: map[string]any{"agentURL": url2}, Extra: map[string]any{}}}}
	c.withContainer("t1", "mysql-database", db1.MySQLProperties())
	c.withContainer("t2", "mysql-database", db2.MySQLProperties())
	st, _ := deployer.OpenStore(b.TempDir(), 3)
	c.store = st
	c.be = &deployer.AgentBackend{Token: testToken, Parallel: 4, Store: st, TLS: &deployer.AgentTLS{InsecureHTTP: true}}

	comp := filepath.Join(b.TempDir(), "bigdb")
	os.MkdirAll(filepath.Join(comp, "mysql-databases"), 0o755)
	os.WriteFile(filepath.Join(comp, "mysql-databases", "schema.sql"),
		[]byte("CREATE TABLE records (id INT PRIMARY KEY AUTO_INCREMENT, payload VARCHAR(1024)) ENGINE=InnoDB;\n"), 0o644)
	svcs := model.Services{"bigdb": {Name: "bigdb", Type: "mysql-database", Attrs: map[string]any{"pkg": comp, "deployState": true}}}
	benchDeploy(b, c, svcs, dist("bigdb", "t1"))
	// 100000 rows of 960 hex characters of random bytes: about 100 MB
	// (hex compresses about 2:1, like typical text).
	for i := 0; i < 10; i++ {
		db1.SQL(b, "USE bigdb; INSERT INTO records (payload) SELECT HEX(RANDOM_BYTES(480)) FROM seq_1_to_10000")
	}
	dataMB, _ := strconv.ParseFloat(db1.SQL(b, "SELECT SUM(LENGTH(payload))/1e6 FROM bigdb.records"), 64)
	sum := db1.SQL(b, "CHECKSUM TABLE bigdb.records")

	// The baseline: mysqldump | mysql between the same two servers.
	db2.SQL(b, "CREATE DATABASE baseline")
	start := time.Now()
	dump := exec.Command("mysqldump", "--no-defaults", "--protocol=socket", "--socket="+db1.Socket, "-uroot", "--single-transaction", "--quick", "bigdb")
	load := exec.Command("mariadb", "--no-defaults", "--protocol=socket", "--socket="+db2.Socket, "-uroot", "baseline")
	dump.Env = append(os.Environ(), "MYSQL_PWD="+db1.Password)
	load.Env = append(os.Environ(), "MYSQL_PWD="+db2.Password)
	pipe, _ := dump.StdoutPipe()
	load.Stdin = pipe
	if err := load.Start(); err != nil {
		b.Fatal(err)
	}
	if err := dump.Run(); err != nil {
		b.Fatal(err)
	}
	if err := load.Wait(); err != nil {
		b.Fatal(err)
	}
	baseline := time.Since(start)
	db2.SQL(b, "DROP DATABASE baseline")

	rss0 := max(procStatus(b, p1.Pid, "VmRSS"), procStatus(b, p2.Pid, "VmRSS"))
	b.ResetTimer()
	start = time.Now()
	targets := []string{"t2", "t1"}
	for i := 0; i < b.N; i++ {
		benchDeploy(b, c, svcs, dist("bigdb", targets[i%2]))
	}
	move := time.Since(start) / time.Duration(b.N)
	b.StopTimer()
	dst := db2
	if b.N%2 == 0 {
		dst = db1
	}
	if got := dst.SQL(b, "CHECKSUM TABLE bigdb.records"); got != sum {
		b.Fatalf("the moved table's checksum is %q, was %q", got, sum)
	}
	info, _, _ := st.LatestSnapshot("bigdb")
	peak := max(procStatus(b, p1.Pid, "VmHWM"), procStatus(b, p2.Pid, "VmHWM"))
	b.ReportMetric(dataMB, "data-MB")
	b.ReportMetric(float64(info.Size)/1e6, "dump-MB")
	b.ReportMetric(move.Seconds(), "move-s")
	b.ReportMetric(baseline.Seconds(), "mysqldump|mysql-s")
	b.ReportMetric(move.Seconds()/baseline.Seconds(), "ratio")
	b.ReportMetric(float64(rss0)/1024, "agent-RSS-before-MB")
	b.ReportMetric(float64(peak)/1024, "agent-peak-RSS-MB")
}
