package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// ContainerPostgreSQL is the container of a machine started with it: a
// real PostgreSQL server of its own, in its namespace, for services of
// type postgresql-database. PostgreSQL refuses to run as root, so the
// server runs as the user nobody: the testbed must run as the real root
// (not in a user namespace of its own, where nobody does not exist).
const ContainerPostgreSQL = "postgresql-database"

// PostgreSQLPort is the port every machine's PostgreSQL server listens on.
const PostgreSQLPort = 5432

// PostgreSQLUser is the administrator of every machine's PostgreSQL
// server; its password is in Testbed.PostgreSQLPasswordFile.
const PostgreSQLUser = "postgres"

// pgUID is the user (nobody) the PostgreSQL servers run as.
const pgUID = 65534

// pgBinDir finds the directory of Debian's PostgreSQL server programs
// (the newest version), or the one of initdb on PATH.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("initdb and postgres not found on PATH nor in /usr/lib/postgresql/*/bin")
}

// PostgreSQLSocketDir is the directory of the Unix socket of a machine's
// PostgreSQL server (its data directory is data/ inside it).
func (m *Machine) PostgreSQLSocketDir() string {
	return filepath.Join(filepath.Dir(m.StateDir), "postgresql")
}

// PostgreSQLPasswordFile is the file holding the password of
// PostgreSQLUser on every machine's server ("" when the testbed runs
// none); like the MariaDB password, it reaches the coordinator by
// augmentation only.
func (tb *Testbed) PostgreSQLPasswordFile() string {
	if !tb.hasContainer(ContainerPostgreSQL) {
		return ""
	}
	return filepath.Join(tb.cfg.Dir, "postgresql-password")
}

// asNobody runs cmd (a command of the host's namespace) as the user the
// servers run as.
func asNobody(name string, args ...string) []string {
	return append([]string{"setpriv", fmt.Sprintf("--reuid=%d", pgUID), fmt.Sprintf("--regid=%d", pgUID), "--clear-groups", name}, args...)
}

// pgTemplate initialises, once per testbed, the data directory every
// machine's server starts from (a copy) with the administrator's password.
func (tb *Testbed) pgTemplate() (string, error) {
	tb.pgOnce.Do(func() {
		bin, err := pgBinDir()
		if err != nil {
			tb.pgErr = err
			return
		}
		root := filepath.Join(tb.cfg.Dir, "postgresql-template")
		os.RemoveAll(root)
		if err := os.MkdirAll(root, 0o755); err != nil {
			tb.pgErr = err
			return
		}
		var pw [12]byte
		rand.Read(pw[:])
		pass := hex.EncodeToString(pw[:])
		if err := os.WriteFile(tb.PostgreSQLPasswordFile(), []byte(pass+"\n"), 0o600); err != nil {
			tb.pgErr = fmt.Errorf("testbed: write the PostgreSQL password: %w", err)
			return
		}
		pwFile := filepath.Join(root, "pw")
		if err := os.WriteFile(pwFile, []byte(pass+"\n"), 0o644); err != nil {
			tb.pgErr = err
			return
		}
		defer os.Remove(pwFile)
		if err := os.Chown(root, pgUID, pgUID); err != nil {
			tb.pgErr = err
			return
		}
		data := filepath.Join(root, "data")
		argv := asNobody(filepath.Join(bin, "initdb"), "-D", data, "-U", PostgreSQLUser, "--pwfile="+pwFile,
			"--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.pgErr = fmt.Errorf("testbed: initdb: %v\n%s", err, out)
			return
		}
		// Every address of the machine, every client with the password.
		hba := "local all all scram-sha-256\nhost all all 0.0.0.0/0 scram-sha-256\n"
		if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
			tb.pgErr = fmt.Errorf("testbed: %w", err)
			return
		}
		if err := os.Chown(filepath.Join(data, "pg_hba.conf"), pgUID, pgUID); err != nil {
			tb.pgErr = fmt.Errorf("testbed: %w", err)
			return
		}
		tb.pgDir = data
	})
	return tb.pgDir, tb.pgErr
}

// startPostgreSQL starts the PostgreSQL server of m in its namespace, as
// nobody (a fresh data directory from the template, or its old one), and
// waits until it reports READY=1.
func (tb *Testbed) startPostgreSQL(m *Machine) error {
	tmpl, err := tb.pgTemplate()
	if err != nil {
		return err
	}
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	dir := m.PostgreSQLSocketDir()
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(data); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("machine %s: %w", m.Name, err)
		}
		if out, err := exec.Command("cp", "-a", tmpl, data).CombinedOutput(); err != nil {
			return fmt.Errorf("machine %s: copy the PostgreSQL data directory: %v: %s", m.Name, err, out)
		}
		if err := os.Chown(dir, pgUID, pgUID); err != nil {
			return fmt.Errorf("machine %s: %w", m.Name, err)
		}
	}
	// The lock files a killed server left: none of its processes runs
	// (the machine's namespace was emptied), but their pids may be taken.
	os.Remove(filepath.Join(data, "postmaster.pid"))
	os.Remove(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d.lock", PostgreSQLPort)))
	logFile := filepath.Join(dir, "postgresql.log")
	argv := asNobody(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", fmt.Sprint(PostgreSQLPort),
		"-c", "listen_addresses=*", "-c", "logging_collector=off", "-c", "shared_buffers=16MB")
	cmd := m.Host.Command(argv[0], argv[1:]...)
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGINT: PostgreSQL's fast shutdown, clean but without waiting for
	// its clients to leave.
	s, err := startNotified(m, cmd, dir, logFile, syscall.SIGINT)
	if err != nil {
		return fmt.Errorf("machine %s: postgres: %w", m.Name, err)
	}
	m.servers[ContainerPostgreSQL] = s
	return nil
}

// pgUsable reports why this process cannot run PostgreSQL servers, if it
// cannot: they run as nobody, which needs the real root.
func pgUsable() error {
	if os.Geteuid() != 0 || os.Getenv(UserNSEnv) != "" {
		return fmt.Errorf("container %s needs the real root (the server runs as nobody)", ContainerPostgreSQL)
	}
	if _, err := pgBinDir(); err != nil {
		return fmt.Errorf("container %s needs PostgreSQL (package postgresql): %w", ContainerPostgreSQL, err)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		return fmt.Errorf("container %s needs setpriv (util-linux): %w", ContainerPostgreSQL, err)
	}
	return nil
}

// pgReachable checks that the user nobody, as whom the PostgreSQL servers
// run, can reach dir: every directory up to it must be searchable by
// others.
func pgReachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("container %s: the servers run as nobody, who cannot enter %s (mode %v): choose a directory every user may search", ContainerPostgreSQL, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// pgAugmentRule is the augmentation rule adding the PostgreSQL servers'
// credentials.
func (tb *Testbed) pgAugmentRule() string {
	return fmt.Sprintf(`  - name: postgresql-database credentials
    match:
      containers: [%[1]s]
    merge:
      containers:
        %[1]s:
          postgresqlUsername: %[2]s
          postgresqlPassword: {$file: %[3]q}
`, ContainerPostgreSQL, PostgreSQLUser, tb.PostgreSQLPasswordFile())
}
