package dysnomia

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// postgresqlDatabase is the postgresql-database module: the component's
// database is named like the component. Container properties:
// postgresqlUsername (default postgres), postgresqlPassword,
// postgresqlPort, postgresqlSocket (the directory of the server's unix
// socket, preferred when set) or postgresqlHost (default 127.0.0.1). The
// operations are those of mysql-database, with pg_dump and psql;
// activate loads $component/postgresql-databases/*.sql.
type postgresqlDatabase struct{}

func (postgresqlDatabase) Name() string { return "postgresql-database" }

type pgClient struct {
	inv        *Invocation
	psql, dump string
	db         string
}

func newPGClient(inv *Invocation) (*pgClient, error) {
	psql, err := lookFirst("psql")
	if err != nil {
		return nil, err
	}
	dump, err := lookFirst("pg_dump")
	if err != nil {
		return nil, err
	}
	db := inv.ComponentName()
	if err := checkNames(db); err != nil {
		return nil, err
	}
	p := inv.Properties
	user := p["postgresqlUsername"]
	if user == "" {
		user = "postgres"
	}
	host := p["postgresqlSocket"]
	if host == "" {
		host = p["postgresqlHost"]
	}
	if host == "" {
		host = "127.0.0.1"
	}
	// libpq reads the connection from the environment: no password in argv.
	c := *inv
	c.Env = append(append([]string(nil), inv.Env...), "PGUSER="+user, "PGHOST="+host, "PGCONNECT_TIMEOUT=10")
	if v := p["postgresqlPort"]; v != "" {
		c.Env = append(c.Env, "PGPORT="+v)
	}
	if v := p["postgresqlPassword"]; v != "" {
		c.Env = append(c.Env, "PGPASSWORD="+v)
	}
	return &pgClient{inv: &c, psql: psql, dump: dump, db: db}, nil
}

func (p *pgClient) ident() string { return `"` + strings.ReplaceAll(p.db, `"`, `""`) + `"` }

func (p *pgClient) sql(ctx context.Context, db, stmt string) (string, error) {
	return query(ctx, p.inv, p.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-d", db, "-c", stmt)
}

// tables returns the number of tables of the database, -1 when it does not exist.
func (p *pgClient) tables(ctx context.Context) (int, error) {
	out, err := p.sql(ctx, "postgres", fmt.Sprintf("SELECT COUNT(*) FROM pg_database WHERE datname='%s'", p.db))
	if err != nil {
		return 0, err
	}
	if out == "0" {
		return -1, nil
	}
	out, err = p.sql(ctx, p.db, "SELECT COUNT(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

func (p *pgClient) load(ctx context.Context, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return runProgram(ctx, p.inv, f, p.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", p.db)
}

func (postgresqlDatabase) Run(ctx context.Context, inv *Invocation) error {
	c, x := inv.ContainerName(), inv.ComponentName()
	switch inv.Op {
	case OpDeactivate:
		return inv.Store.MarkGarbage(c, x)
	case OpActivate, OpSnapshot, OpRestore, OpCollectGarbage:
	default:
		return nil
	}
	p, err := newPGClient(inv)
	if err != nil {
		return err
	}
	switch inv.Op {
	case OpActivate:
		n, err := p.tables(ctx)
		if err != nil {
			return err
		}
		if n < 0 {
			if _, err := p.sql(ctx, "postgres", "CREATE DATABASE "+p.ident()); err != nil {
				return err
			}
			files, _ := filepath.Glob(filepath.Join(inv.Component, "postgresql-databases", "*.sql"))
			sort.Strings(files)
			for _, file := range files {
				if err := p.load(ctx, file); err != nil {
					p.sql(ctx, "postgres", "DROP DATABASE IF EXISTS "+p.ident())
					return fmt.Errorf("load %s: %w", filepath.Base(file), err)
				}
			}
		}
		return inv.Store.MarkActive(c, x)
	case OpSnapshot:
		return dumpSnapshot(ctx, p.inv, "dump.sql.gz", p.dump, "--no-owner", "--no-privileges", "-d", p.db)
	case OpRestore:
		file, err := latestDump(inv, "dump.sql.gz")
		if err != nil || file == "" {
			return err
		}
		n, err := p.tables(ctx)
		if err != nil {
			return err
		}
		if n > 0 && !inv.Replace && !inv.Store.IsGarbage(c, x) {
			return fmt.Errorf("database %s already holds %d tables: not replaced (the restore must be told to replace it: %s=1)", p.db, n, EnvReplace)
		}
		if n > 0 {
			if _, err := p.sql(ctx, "postgres", "DROP DATABASE "+p.ident()); err != nil {
				return err
			}
			n = -1
		}
		if n < 0 {
			if _, err := p.sql(ctx, "postgres", "CREATE DATABASE "+p.ident()); err != nil {
				return err
			}
		}
		if err := loadDump(ctx, p.inv, file, p.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", p.db); err != nil {
			// Half loaded: drop it, so that a retry does not find "data".
			p.sql(context.WithoutCancel(ctx), "postgres", "DROP DATABASE IF EXISTS "+p.ident())
			return err
		}
		return nil
	case OpCollectGarbage:
		if !inv.Store.IsGarbage(c, x) {
			return nil
		}
		if _, err := p.sql(ctx, "postgres", "DROP DATABASE IF EXISTS "+p.ident()); err != nil {
			return err
		}
		inv.Store.UnmarkGarbage(c, x)
	}
	return nil
}
