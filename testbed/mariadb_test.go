package testbed

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// needMariaDB reports the MariaDB server missing (a failure with
// DYDISNIX_REQUIRE_ALL set, as in CI).
func needMariaDB(t *testing.T) {
	t.Helper()
	for _, p := range []string{"mariadbd", "mariadb-install-db", "mysql", "mysqldump"} {
		if _, err := lookPath(p); err != nil {
			testenv.Missing(t, "needs MariaDB (packages mariadb-server, mariadb-client): %v", err)
		}
	}
}

// mysqlOn runs the mysql client inside machine m, connected to its server
// over the socket as the administrator (with password pw, "" for none).
func mysqlOn(m *Machine, pw, sql string) (string, error) {
	args := []string{"--socket=" + m.MySQLSocket(), "--user=" + MySQLUser, "-N", "-B", "-e", sql}
	if pw != "" {
		args = append(args, "--password="+pw)
	}
	out, err := m.Host.Command("mysql", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestMachineMariaDB: a machine started with the mysql-database container
// runs a real mariadbd of its own, announces the container with its port
// and socket but no password, accepts only the password of the testbed's
// password file, keeps its data across a graceful stop (a clean shutdown)
// and dies with the machine on a crash.
func TestMachineMariaDB(t *testing.T) {
	needRoot(t)
	needMariaDB(t)
	bin := buildBinaries(t)
	tb, err := New(Config{Dir: t.TempDir(), BinDir: bin, InsecureHTTP: true, Containers: []string{ContainerMySQL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	m, err := tb.Add("machine1", nil)
	if err != nil {
		t.Fatal(err)
	}

	var announced struct {
		Properties map[string]any            `json:"properties"`
		Containers map[string]map[string]any `json:"containers"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(m.StateDir), "properties.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &announced); err != nil {
		t.Fatal(err)
	}
	c := announced.Containers[ContainerMySQL]
	if c == nil || c["mysqlPort"] != float64(MySQLPort) || c["mysqlSocket"] != m.MySQLSocket() {
		t.Fatalf("announced containers %v: want %s with mysqlPort %d and mysqlSocket %s", announced.Containers, ContainerMySQL, MySQLPort, m.MySQLSocket())
	}
	if strings.Contains(string(data), "assword") {
		t.Fatalf("the announced properties carry a password:\n%s", data)
	}
	if types, _ := announced.Properties["supportedTypes"].([]any); !slices.Contains(types, any(ContainerMySQL)) {
		t.Fatalf("supportedTypes %v lacks %s", announced.Properties["supportedTypes"], ContainerMySQL)
	}

	pwData, err := os.ReadFile(tb.MySQLPasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(pwData))
	if out, err := mysqlOn(m, "", "SELECT 1"); err == nil {
		t.Fatalf("the administrator got in without the password: %s", out)
	}
	if out, err := mysqlOn(m, pw, "CREATE DATABASE t; CREATE TABLE t.x (i INT); INSERT INTO t.x VALUES (1),(2),(3)"); err != nil {
		t.Fatalf("with the password: %v: %s", err, out)
	}
	// The server listens on the machine's address, reachable from the
	// coordinator's namespace (where the loop and the demo's checks run).
	out, err := tb.Coordinator().Command("mysql", "--host="+m.Host.Addr.String(), "--port=3306", "--user=nobody", "-e", "SELECT 1").CombinedOutput()
	if !strings.Contains(string(out), "is not allowed to connect") {
		t.Fatalf("from the coordinator: want the server's refusal of an unknown host, got %v: %s", err, out)
	}

	if err := tb.Stop("machine1"); err != nil {
		t.Fatal(err)
	}
	if m.ServerRunning(ContainerMySQL) {
		t.Fatal("mariadbd runs after the machine stopped")
	}
	errLog, _ := os.ReadFile(filepath.Join(m.MySQLDir(), "error.log"))
	if !strings.Contains(string(errLog), "Shutdown complete") {
		t.Fatalf("a graceful stop did not shut mariadbd down cleanly; its log ends:\n%s", tail(string(errLog), 8))
	}
	if err := tb.Start("machine1"); err != nil {
		t.Fatal(err)
	}
	if out, err := mysqlOn(m, pw, "SELECT COUNT(*) FROM t.x"); err != nil || out != "3" {
		t.Fatalf("after a restart: %v: %q, want the 3 rows", err, out)
	}

	before, _ := os.ReadFile(filepath.Join(m.MySQLDir(), "error.log"))
	if err := tb.Crash("machine1"); err != nil {
		t.Fatal(err)
	}
	if m.ServerRunning(ContainerMySQL) {
		t.Fatal("mariadbd survived the crash of its machine")
	}
	pids, err := exec.Command("ip", "netns", "pids", m.Host.Netns).Output()
	if err != nil || strings.TrimSpace(string(pids)) != "" {
		t.Fatalf("processes left in the crashed machine: %q (%v)", pids, err)
	}
	after, _ := os.ReadFile(filepath.Join(m.MySQLDir(), "error.log"))
	if strings.Contains(string(after[len(before):]), "Shutdown complete") {
		t.Fatal("a crash shut mariadbd down cleanly: it was not killed")
	}
}

// TestContainersBadInput: an unknown container or an account name that is
// not an SQL name is refused before anything starts, with a message
// naming it.
func TestContainersBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown container", Config{Containers: []string{"oracle-database"}}, `unknown container "oracle-database" (the testbed runs: mysql-database, postgresql-database)`},
		{"account with a quote", Config{MySQLAccounts: []string{"x'; DROP USER root; --"}}, `MariaDB account "x'; DROP USER root; --"`},
		{"empty account", Config{MySQLAccounts: []string{""}}, `MariaDB account ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir, tc.cfg.BinDir = t.TempDir(), t.TempDir()
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
