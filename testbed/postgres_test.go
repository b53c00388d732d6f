package testbed

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// psqlOn runs psql inside machine m on its server's socket as the
// administrator with password pw.
func psqlOn(m *Machine, pw, sql string) (string, error) {
	cmd := m.Host.Command("psql", "-X", "-h", m.PostgreSQLSocketDir(), "-p", "5432", "-U", PostgreSQLUser, "-d", "postgres", "-tAc", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// openForNobody opens a test's private temporary directories (and only
// them) to the user the PostgreSQL servers run as.
func openForNobody(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestMachinePostgreSQL: a machine started with the postgresql-database
// container runs a real PostgreSQL server of its own (as nobody), announced
// with its port and socket directory and no password; the administrator
// needs the password of the testbed's file, which the testbed's
// augmentation gives the coordinator; a graceful stop shuts the server
// down cleanly, start finds the data again, a crash kills it.
func TestMachinePostgreSQL(t *testing.T) {
	needRoot(t)
	if err := pgUsable(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	testenv.NeedCommand(t, "psql")
	bin := buildBinaries(t)
	dir := t.TempDir()
	if _, err := New(Config{Dir: dir, BinDir: bin, InsecureHTTP: true, Containers: []string{ContainerPostgreSQL}}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("a testbed directory nobody cannot reach: error %v, want one saying so", err)
	}
	openForNobody(t, dir)
	tb, err := New(Config{Dir: dir, BinDir: bin, InsecureHTTP: true, Containers: []string{ContainerPostgreSQL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	m, err := tb.Add("machine1", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(m.StateDir), "properties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var announced struct {
		Properties map[string]any            `json:"properties"`
		Containers map[string]map[string]any `json:"containers"`
	}
	if err := json.Unmarshal(data, &announced); err != nil {
		t.Fatal(err)
	}
	if c := announced.Containers[ContainerPostgreSQL]; c == nil || c["postgresqlPort"] != float64(PostgreSQLPort) || c["postgresqlSocket"] != m.PostgreSQLSocketDir() {
		t.Fatalf("announced containers %v", announced.Containers)
	}
	if types, _ := announced.Properties["supportedTypes"].([]any); !slices.Contains(types, any(ContainerPostgreSQL)) || strings.Contains(string(data), "assword") {
		t.Fatalf("announced:\n%s", data)
	}
	pwData, err := os.ReadFile(tb.PostgreSQLPasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(pwData))

	// The testbed's augmentation adds exactly these credentials.
	augFile := filepath.Join(t.TempDir(), "augment.yaml")
	if err := os.WriteFile(augFile, []byte(tb.ContainersAugment()), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := augment.Load(augFile, augment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	infra := model.Infrastructure{"machine1": {Name: "machine1", Properties: announced.Properties,
		Containers: map[string]map[string]any{ContainerPostgreSQL: announced.Containers[ContainerPostgreSQL]}}}
	got, err := a.Apply(context.Background(), infra)
	if err != nil {
		t.Fatal(err)
	}
	if c := got["machine1"].Containers[ContainerPostgreSQL]; c["postgresqlUsername"] != PostgreSQLUser || c["postgresqlPassword"] != pw {
		t.Fatalf("the augmentation gives %v, want the administrator and the password of %s", c, tb.PostgreSQLPasswordFile())
	}

	if out, err := psqlOn(m, "wrong", "SELECT 1"); err == nil {
		t.Fatalf("the administrator got in with a wrong password: %s", out)
	}
	if out, err := psqlOn(m, pw, "CREATE TABLE kept (i int); INSERT INTO kept VALUES (1), (2)"); err != nil {
		t.Fatalf("with the password: %v: %s", err, out)
	}
	if err := tb.Stop("machine1"); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(m.PostgreSQLSocketDir(), "postgresql.log"))
	if m.ServerRunning(ContainerPostgreSQL) || !strings.Contains(string(log), "database system is shut down") {
		t.Fatalf("a graceful stop did not shut postgres down cleanly; its log ends:\n%s", tail(string(log), 8))
	}
	if err := tb.Start("machine1"); err != nil {
		t.Fatal(err)
	}
	if out, err := psqlOn(m, pw, "SELECT count(*) FROM kept"); err != nil || out != "2" {
		t.Fatalf("after a restart: %v: %q, want 2 rows", err, out)
	}
	before, _ := os.ReadFile(filepath.Join(m.PostgreSQLSocketDir(), "postgresql.log"))
	if err := tb.Crash("machine1"); err != nil {
		t.Fatal(err)
	}
	if m.ServerRunning(ContainerPostgreSQL) {
		t.Fatal("postgres survived the crash of its machine")
	}
	if pids, _ := exec.Command("ip", "netns", "pids", m.Host.Netns).Output(); strings.TrimSpace(string(pids)) != "" {
		t.Fatalf("processes left in the crashed machine: %s", pids)
	}
	after, _ := os.ReadFile(filepath.Join(m.PostgreSQLSocketDir(), "postgresql.log"))
	if strings.Contains(string(after[len(before):]), "database system is shut down") {
		t.Fatal("a crash shut postgres down cleanly: it was not killed")
	}
}

// TestPostgreSQLDatabaseDeployed: the loop deploys a postgresql-database
// service onto a testbed machine's PostgreSQL server, the credentials
// coming from the testbed's augmentation (never announced): the database
// and the table of its component's script exist there.
func TestPostgreSQLDatabaseDeployed(t *testing.T) {
	needRoot(t)
	if err := pgUsable(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	testenv.NeedCommand(t, "psql", "pg_dump")
	dir := t.TempDir()
	openForNobody(t, dir)
	comp := filepath.Join(dir, "components", "notesdb")
	if err := os.MkdirAll(filepath.Join(comp, "postgresql-databases"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(comp, "postgresql-databases", "notes.sql"), []byte("CREATE TABLE notes (id serial PRIMARY KEY, body text);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svcs := map[string]any{"notesdb": map[string]any{"name": "notesdb", "type": ContainerPostgreSQL, "pkg": comp}}
	h, err := NewHarness(HarnessConfig{Dir: filepath.Join(dir, "h"), BinDir: buildBinaries(t), Machines: 2, Services: svcs,
		Containers: []string{ContainerPostgreSQL}, AugmentFile: filepath.Join(dir, "augment.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coordinator log:\n%s", h.LoopLog(30))
		}
		h.Close()
	})
	if err := os.WriteFile(filepath.Join(dir, "augment.yaml"), []byte(h.TB.ContainersAugment()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.StartLoop(); err != nil {
		t.Fatal(err)
	}
	st, _, err := h.Settled(context.Background(), 0, "", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := h.TB.Machine(st.TargetOf("notesdb"))
	if !ok {
		t.Fatalf("notesdb placed on %q", st.TargetOf("notesdb"))
	}
	pw, err := os.ReadFile(h.TB.PostgreSQLPasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	cmd := m.Host.Command("psql", "-X", "-h", m.PostgreSQLSocketDir(), "-U", PostgreSQLUser, "-d", "notesdb", "-tAc", "SELECT count(*) FROM notes")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)))
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("notesdb on %s: %v: %s", m.Name, err, out)
	}
}
