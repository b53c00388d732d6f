package dysnomia

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

var lookPath = exec.LookPath

// mysqlDatabase is the mysql-database module (MariaDB or MySQL): the
// component's database is named like the component. Container
// properties: mysqlUsername, mysqlPassword, mysqlPort (TCP on mysqlHost,
// default 127.0.0.1), mysqlSocket (a unix socket, preferred when set).
//
//	activate         create the database when absent and load $component/mysql-databases/*.sql (sorted)
//	deactivate       mark it as garbage (data kept)
//	snapshot         mysqldump --single-transaction, gzip: snapshots/C/X/<sha256>/dump.sql.gz
//	restore          load the newest generation (checksum verified) into the database;
//	                 refused when the database holds tables, unless DYSNOMIA_REPLACE=1 or it is garbage
//	collect-garbage  drop the database when it is marked as garbage
type mysqlDatabase struct{}

func (mysqlDatabase) Name() string { return "mysql-database" }

// mysqlClient holds the programs and the option file of one invocation.
type mysqlClient struct {
	inv          *Invocation
	client, dump string
	defaults, db string
	cleanup      func()
}

func newMySQLClient(inv *Invocation) (*mysqlClient, error) {
	client, err := lookFirst("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	dump, err := lookFirst("mariadb-dump", "mysqldump")
	if err != nil {
		return nil, err
	}
	p := inv.Properties
	var b strings.Builder
	b.WriteString("[client]\n")
	opt := func(k, v string) {
		if v != "" {
			// Option files take a value in double quotes with backslash escapes.
			fmt.Fprintf(&b, "%s=\"%s\"\n", k, strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v))
		}
	}
	opt("user", p["mysqlUsername"])
	opt("password", p["mysqlPassword"])
	if p["mysqlSocket"] != "" {
		opt("socket", p["mysqlSocket"])
		opt("protocol", "socket")
	} else {
		host := p["mysqlHost"]
		if host == "" {
			host = "127.0.0.1"
		}
		opt("host", host)
		opt("port", p["mysqlPort"])
		opt("protocol", "tcp")
	}
	tmpRoot := filepath.Join(inv.Store.Dir, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tmpRoot, "my-*.cnf")
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	db := inv.ComponentName()
	if err := checkNames(db); err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	return &mysqlClient{inv: inv, client: client, dump: dump, defaults: "--defaults-extra-file=" + f.Name(), db: db,
		cleanup: func() { os.Remove(f.Name()) }}, nil
}

func (m *mysqlClient) ident() string { return "`" + strings.ReplaceAll(m.db, "`", "``") + "`" }

func (m *mysqlClient) sql(ctx context.Context, stmt string) (string, error) {
	return query(ctx, m.inv, m.client, m.defaults, "--batch", "--skip-column-names", "-e", stmt)
}

// tables returns the number of tables of the database, -1 when it does not exist.
func (m *mysqlClient) tables(ctx context.Context) (int, error) {
	out, err := m.sql(ctx, fmt.Sprintf("SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='%[1]s'), (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='%[1]s')", m.db))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, fmt.Errorf("unexpected answer %q", out)
	}
	if f[0] == "0" {
		return -1, nil
	}
	return strconv.Atoi(f[1])
}

func (mysqlDatabase) Run(ctx context.Context, inv *Invocation) error {
	c, x := inv.ContainerName(), inv.ComponentName()
	switch inv.Op {
	case OpDeactivate:
		return inv.Store.MarkGarbage(c, x)
	case OpLock, OpUnlock:
		return nil
	case OpActivate, OpSnapshot, OpRestore, OpCollectGarbage:
	default:
		return nil
	}
	m, err := newMySQLClient(inv)
	if err != nil {
		return err
	}
	defer m.cleanup()
	switch inv.Op {
	case OpActivate:
		n, err := m.tables(ctx)
		if err != nil {
			return err
		}
		if n < 0 {
			if _, err := m.sql(ctx, "CREATE DATABASE "+m.ident()); err != nil {
				return err
			}
			files, _ := filepath.Glob(filepath.Join(inv.Component, "mysql-databases", "*.sql"))
			sort.Strings(files)
			for _, file := range files {
				if err := m.load(ctx, file); err != nil {
					m.sql(ctx, "DROP DATABASE IF EXISTS "+m.ident()) // so that the next activation starts afresh
					return fmt.Errorf("load %s: %w", filepath.Base(file), err)
				}
			}
		}
		return inv.Store.MarkActive(c, x)
	case OpSnapshot:
		return dumpSnapshot(ctx, inv, "dump.sql.gz", m.dump, m.defaults, "--single-transaction", "--quick", "--skip-dump-date", m.db)
	case OpRestore:
		file, err := latestDump(inv, "dump.sql.gz")
		if err != nil || file == "" {
			return err
		}
		n, err := m.tables(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			if !inv.Replace && !inv.Store.IsGarbage(c, x) {
				return fmt.Errorf("database %s already holds %d tables: not replaced (the restore must be told to replace it: %s=1)", m.db, n, EnvReplace)
			}
			if _, err := m.sql(ctx, "DROP DATABASE "+m.ident()); err != nil {
				return err
			}
		}
		if _, err := m.sql(ctx, "CREATE DATABASE IF NOT EXISTS "+m.ident()); err != nil {
			return err
		}
		if err := loadDump(ctx, inv, file, m.client, m.defaults, "--database="+m.db); err != nil {
			// Half loaded: drop it, so that a retry does not find "data".
			m.sql(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+m.ident())
			return err
		}
		return nil
	case OpCollectGarbage:
		if !inv.Store.IsGarbage(c, x) {
			return nil
		}
		if _, err := m.sql(ctx, "DROP DATABASE IF EXISTS "+m.ident()); err != nil {
			return err
		}
		inv.Store.UnmarkGarbage(c, x)
	}
	return nil
}

func (m *mysqlClient) load(ctx context.Context, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return runProgram(ctx, m.inv, f, m.client, m.defaults, "--database="+m.db)
}
