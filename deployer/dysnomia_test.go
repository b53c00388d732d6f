package deployer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/dbtest"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// withContainer gives target the container with the properties.
func (c *cluster) withContainer(target, container string, props map[string]string) {
	t := c.infra[target]
	if t.Containers == nil {
		t.Containers = map[string]map[string]any{}
	}
	m := map[string]any{}
	for k, v := range props {
		m[k] = v
	}
	t.Containers[container] = m
}

// usersDB is a mysql-database service whose component loads a schema.
func usersDB(t *testing.T, stateful bool) *model.Service {
	comp := filepath.Join(t.TempDir(), "usersdb")
	os.MkdirAll(filepath.Join(comp, "mysql-databases"), 0o755)
	os.WriteFile(filepath.Join(comp, "mysql-databases", "schema.sql"), []byte("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64));\n"), 0o644)
	s := &model.Service{Name: "usersdb", Type: "mysql-database", Attrs: map[string]any{"pkg": comp}}
	if stateful {
		s.Attrs["deployState"] = true
	}
	return s
}

// TestMySQLDatabaseMovesWithItsData moves a mysql-database service between
// two agents, each with its own MariaDB server: the rows written on the
// first server are on the second after the move (dump, transfer through
// the coordinator, load), and a service without deployState moves without
// its data.
func TestMySQLDatabaseMovesWithItsData(t *testing.T) {
	db1, db2 := dbtest.MariaDB(t), dbtest.MariaDB(t)
	c := newCluster(t, 2)
	c.withContainer("t1", "mysql-database", db1.MySQLProperties())
	c.withContainer("t2", "mysql-database", db2.MySQLProperties())

	svcs := model.Services{"usersdb": usersDB(t, true)}
	c.mustDeploy(svcs, dist("usersdb", "t1"))
	db1.SQL(t, "INSERT INTO usersdb.users VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')")
	sum1 := db1.SQL(t, "CHECKSUM TABLE usersdb.users")

	plan := c.mustDeploy(svcs, dist("usersdb", "t2"))
	if !strings.Contains(plan.String(), "restore usersdb") {
		t.Fatalf("no state move in the plan:\n%s", plan)
	}
	if got := db2.SQL(t, "SELECT COUNT(*) FROM usersdb.users"); got != "3" {
		t.Fatalf("after the move t2's database has %s rows, want 3", got)
	}
	if sum2 := db2.SQL(t, "CHECKSUM TABLE usersdb.users"); sum2 != sum1 {
		t.Fatalf("checksum after the move %q, before %q", sum2, sum1)
	}
	// The old copy is kept (garbage) on t1 until --delete-state.
	if got := db1.SQL(t, "SELECT COUNT(*) FROM usersdb.users"); got != "3" {
		t.Fatalf("the old copy on t1: %s rows", got)
	}
	// The snapshot passed through the coordinator's store.
	if info, ok, _ := c.store.LatestSnapshot("usersdb"); !ok || info.Size == 0 {
		t.Fatal("the coordinator's store has no snapshot of usersdb")
	}

	// A crash of t2: the database comes back on t1 from the last snapshot
	// dydisnix-snapshot took (of the running database); what was written
	// after it is lost. t1's stale copy (garbage) is replaced.
	db2.SQL(t, "INSERT INTO usersdb.users VALUES (4, 'dave')")
	man, _ := c.store.Latest()
	if _, err := c.be.SnapshotAll(context.Background(), man, c.store, nil); err != nil {
		t.Fatal(err)
	}
	db2.SQL(t, "INSERT INTO usersdb.users VALUES (5, 'erin')")
	plan, err := c.deploy(svcs, dist("usersdb", "t1"), deployer.PlanOptions{Unreachable: map[string]bool{"t2": true}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "restore-from-store usersdb") {
		t.Fatalf("no restore from the store in the plan:\n%s", plan)
	}
	if got := db1.SQL(t, "SELECT GROUP_CONCAT(id ORDER BY id) FROM usersdb.users"); got != "1,2,3,4" {
		t.Fatalf("after the crash t1 has rows %s, want 1,2,3,4 (the snapshot's)", got)
	}

	// Without deployState the service moves without its data: t2 gets a
	// fresh database (schema only).
	db2.SQL(t, "DROP DATABASE usersdb")
	svcs = model.Services{"usersdb": usersDB(t, false)}
	plan = c.mustDeploy(svcs, dist("usersdb", "t2"))
	if strings.Contains(plan.String(), "restore") {
		t.Fatalf("a service without deployState migrated its state:\n%s", plan)
	}
	if got := db2.SQL(t, "SELECT COUNT(*) FROM usersdb.users"); got != "0" {
		t.Fatalf("t2's fresh database has %s rows, want 0", got)
	}
}

// TestModuleFailureRollsBack: a module that exits non-zero fails its
// step with the module's name, operation and stderr, and the transition
// is rolled back (what was activated is deactivated again).
func TestModuleFailureRollsBack(t *testing.T) {
	c := newCluster(t, 1)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	good := filepath.Join(dir, "recorder")
	testenv.WriteExecutable(t, good, "#!/bin/sh\necho \"$1 $(basename $2)\" >> "+calls+"\n")
	bad := filepath.Join(dir, "broken")
	testenv.WriteExecutable(t, bad, "#!/bin/sh\n[ \"$1\" = activate ] || exit 0\necho 'port 80 already in use' >&2\nexit 4\n")
	svcs := model.Services{
		"base": {Name: "base", Type: good, Attrs: map[string]any{}},
		"web":  {Name: "web", Type: bad, DependsOn: []string{"base"}, HasDependsOn: true, Attrs: map[string]any{}},
	}
	_, err := c.deploy(svcs, dist("base", "t1", "web", "t1"), deployer.PlanOptions{})
	if err == nil {
		t.Fatal("the deployment succeeded")
	}
	for _, want := range []string{"activate of service web", "Dysnomia module " + bad, "activate of web", "exit status 4", "port 80 already in use", "rolled back"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	b, _ := os.ReadFile(calls)
	if got := strings.Fields(string(b)); len(got) != 4 || got[0] != "activate" || got[2] != "deactivate" {
		t.Errorf("the module of base saw %q, want its activation undone", b)
	}
	if man, _ := c.store.Latest(); man != nil {
		t.Error("a failed deployment installed a generation")
	}
}
