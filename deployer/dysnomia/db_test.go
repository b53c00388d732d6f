package dysnomia

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/dbtest"
)

// dbCase drives one database module against a real server.
type dbCase struct {
	typ, schemaDir string
	props          map[string]string
	// sameDump: equal data gives an equal dump (pg_dump writes a random
	// \restrict key into every dump, so its snapshots always differ).
	sameDump bool
	// sql runs statements in the component's database, returns the output.
	sql func(stmt string) string
	// exists reports whether the database exists.
	exists func() bool
}

func newInvocation(t *testing.T, comp, container string, props map[string]string, store Store) func(op string, replace bool) error {
	return func(op string, replace bool) error {
		var out bytes.Buffer
		inv := &Invocation{Op: op, Component: comp, Container: container, Properties: props, Env: os.Environ(), Store: store, Replace: replace, Output: &out}
		return Run(context.Background(), container, "", 0, inv)
	}
}

func testDatabaseModule(t *testing.T, c dbCase) {
	comp := filepath.Join(t.TempDir(), "0123456789abcdef0123456789abcdef-usersdb")
	if err := os.MkdirAll(filepath.Join(comp, c.schemaDir), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(comp, c.schemaDir, "1-schema.sql"), []byte("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64));\n"), 0o644)
	os.WriteFile(filepath.Join(comp, c.schemaDir, "2-data.sql"), []byte("INSERT INTO users VALUES (1, 'alice'), (2, 'bob');\n"), 0o644)
	store := Store{Dir: t.TempDir()}
	run := newInvocation(t, comp, c.typ, c.props, store)
	count := func() string { return c.sql("SELECT COUNT(*) FROM users") }

	if err := run(OpActivate, false); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != "2" {
		t.Fatalf("after activate: %s users, want 2 (the schema's rows)", got)
	}
	if err := run(OpActivate, false); err != nil || count() != "2" {
		t.Fatalf("a second activate must not load the schema again: %v, %s users", err, count())
	}
	c.sql("INSERT INTO users VALUES (3, 'carol')")
	if err := run(OpSnapshot, false); err != nil {
		t.Fatal(err)
	}
	if err := run(OpSnapshot, false); err != nil {
		t.Fatal(err)
	}
	gens, _ := store.Generations(c.typ, "usersdb")
	if c.sameDump && len(gens) != 1 {
		t.Fatalf("two snapshots of the same data: %d generations, want 1", len(gens))
	}
	if err := store.Verify(c.typ, "usersdb", gens[0].ID); err != nil {
		t.Fatal(err)
	}
	gens = gens[len(gens)-1:]
	c.sql("DELETE FROM users WHERE id = 1")

	// A database that holds tables is not replaced unless told to.
	err := run(OpRestore, false)
	if err == nil || !strings.Contains(err.Error(), "already holds") || !strings.Contains(err.Error(), c.typ) || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("restore into a database with data: %v, want a refusal naming the module and the operation", err)
	}
	if got := count(); got != "2" {
		t.Fatalf("a refused restore changed the data: %s users", got)
	}
	if err := run(OpRestore, true); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != "3" {
		t.Fatalf("after restore: %s users, want 3", got)
	}

	// A dump that fails its checksum is never restored.
	dump := filepath.Join(store.SnapshotDir(c.typ, "usersdb", gens[0].ID), "dump.sql.gz")
	orig, _ := os.ReadFile(dump)
	os.WriteFile(dump, append(append([]byte(nil), orig...), 0), 0o600)
	c.sql("DELETE FROM users WHERE id = 2")
	err = run(OpRestore, true)
	if err == nil || !strings.Contains(err.Error(), "fails its checksum") {
		t.Fatalf("restore of a corrupt dump: %v, want a checksum failure", err)
	}
	if got := count(); got != "2" {
		t.Fatalf("a corrupt dump was loaded: %s users, want the 2 left", got)
	}
	os.WriteFile(dump, orig, 0o600)

	// deactivate keeps the data; collect-garbage drops it.
	if err := run(OpCollectGarbage, false); err != nil || !c.exists() {
		t.Fatalf("collect-garbage of an active database: %v, exists %v", err, c.exists())
	}
	if err := run(OpDeactivate, false); err != nil || !c.exists() {
		t.Fatalf("deactivate: %v, exists %v", err, c.exists())
	}
	if !store.IsGarbage(c.typ, "usersdb") {
		t.Fatal("deactivate did not mark the database as garbage")
	}
	// A restore into a database marked as garbage replaces its stale data.
	if err := run(OpRestore, false); err != nil {
		t.Fatalf("restore into a garbage database: %v", err)
	}
	if err := run(OpCollectGarbage, false); err != nil {
		t.Fatal(err)
	}
	if c.exists() {
		t.Fatal("collect-garbage did not drop the garbage database")
	}
	// Restore into a server without the database creates it.
	if err := run(OpRestore, false); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != "3" {
		t.Fatalf("restore into a fresh server: %s users, want 3", got)
	}

	// A dump that fails half-way leaves no half-loaded database behind,
	// so that a retry is not refused as a restore over data.
	if err := run(OpDeactivate, false); err != nil {
		t.Fatal(err)
	}
	if err := run(OpCollectGarbage, false); err != nil || c.exists() {
		t.Fatalf("collect-garbage: %v, exists %v", err, c.exists())
	}
	src := filepath.Join(store.Dir, "bad")
	os.MkdirAll(src, 0o700)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("CREATE TABLE half (x INT);\nTHIS IS NOT SQL;\n"))
	zw.Close()
	os.WriteFile(filepath.Join(src, "dump.sql.gz"), gz.Bytes(), 0o600)
	sum, _ := HashFile(filepath.Join(src, "dump.sql.gz"))
	if err := store.Import(c.typ, "usersdb", src, sum, "sha256:"+sum); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := run(OpRestore, false); err == nil || strings.Contains(err.Error(), "already holds") {
			t.Fatalf("restore %d of a broken dump: %v, want the load's failure", i+1, err)
		}
		if c.exists() {
			t.Fatalf("a failed load left the database behind")
		}
	}
}

func TestMySQLDatabaseModule(t *testing.T) {
	t.Parallel()
	srv := dbtest.MariaDB(t)
	props := srv.MySQLProperties()
	testDatabaseModule(t, dbCase{typ: "mysql-database", schemaDir: "mysql-databases", props: props, sameDump: true,
		sql:    func(stmt string) string { return srv.SQL(t, "USE usersdb; "+stmt) },
		exists: func() bool { return srv.SQL(t, "SHOW DATABASES LIKE 'usersdb'") == "usersdb" }})

	t.Run("credentials come from the container properties", func(t *testing.T) {
		comp := filepath.Join(t.TempDir(), "otherdb")
		os.MkdirAll(comp, 0o755)
		bad := map[string]string{}
		for k, v := range props {
			bad[k] = v
		}
		bad["mysqlPassword"] = "wrong"
		err := newInvocation(t, comp, "mysql-database", bad, Store{Dir: t.TempDir()})(OpActivate, false)
		if err == nil || !strings.Contains(err.Error(), "Access denied") || !strings.Contains(err.Error(), "activate") {
			t.Fatalf("activate with a wrong password: %v, want the server's refusal", err)
		}
		tcp := map[string]string{"mysqlUsername": props["mysqlUsername"], "mysqlPassword": props["mysqlPassword"], "mysqlPort": props["mysqlPort"]}
		if err := newInvocation(t, comp, "mysql-database", tcp, Store{Dir: t.TempDir()})(OpActivate, false); err != nil {
			t.Fatalf("activate over TCP (mysqlPort): %v", err)
		}
		if srv.SQL(t, "SHOW DATABASES LIKE 'otherdb'") != "otherdb" {
			t.Fatal("no database otherdb")
		}
	})
}

func TestPostgreSQLDatabaseModule(t *testing.T) {
	t.Parallel()
	srv := dbtest.PostgreSQL(t)
	testDatabaseModule(t, dbCase{typ: "postgresql-database", schemaDir: "postgresql-databases", props: srv.PostgreSQLProperties(),
		sql: func(stmt string) string { return srv.PSQL(t, "usersdb", stmt) },
		exists: func() bool {
			return srv.PSQL(t, "postgres", "SELECT COUNT(*) FROM pg_database WHERE datname = 'usersdb'") == "1"
		}})
}
