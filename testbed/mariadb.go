package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ContainerMySQL is the container a machine started with it runs: a real
// MariaDB server (mariadbd) of its own, in its namespace, for services of
// type mysql-database.
const ContainerMySQL = "mysql-database"

// MySQLPort is the port every machine's MariaDB server listens on (each
// machine is a namespace of its own, so they never collide).
const MySQLPort = 3306

// MySQLUser is the administrator account of every machine's MariaDB server;
// its password is in Testbed.MySQLPasswordFile, never announced.
const MySQLUser = "root"

// sqlName is what an account name of Config.MySQLAccounts may be.
var sqlName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// Container names Config.Containers accepts.
var knownContainers = map[string]bool{ContainerMySQL: true, ContainerPostgreSQL: true}

// mariadbArgs are the server settings of every machine: small buffers (a
// testbed runs many servers on one host), no binary log, no name lookups.
var mariadbArgs = []string{
	"--innodb-log-file-size=4M",
	"--innodb-buffer-pool-size=16M",
	"--performance-schema=OFF",
	"--skip-log-bin",
	"--skip-name-resolve",
	"--max-connections=100",
}

// dbServer is one running database server of a machine.
type dbServer struct {
	cmd  *exec.Cmd
	stop syscall.Signal // a clean, prompt shutdown
	done chan struct{}
}

// MySQLDir is the directory of a machine's MariaDB server: data/, the
// socket mysqld.sock, error.log.
func (m *Machine) MySQLDir() string { return filepath.Join(filepath.Dir(m.StateDir), "mysql") }

// MySQLSocket is the Unix socket of a machine's MariaDB server.
func (m *Machine) MySQLSocket() string { return filepath.Join(m.MySQLDir(), "mysqld.sock") }

// MySQLPasswordFile is the file holding the password of MySQLUser on every
// machine's MariaDB server ("" when the testbed runs none). An
// augmentation model gives it to the coordinator ({$file: ...}); it is
// never announced over mDNS.
func (tb *Testbed) MySQLPasswordFile() string {
	if !tb.hasContainer(ContainerMySQL) {
		return ""
	}
	return filepath.Join(tb.cfg.Dir, "mysql-password")
}

// ContainersAugment is an augmentation rule file that adds the administrator
// account of the testbed's database servers to the container of every
// machine that announces one (mysql-database: mysqlUsername and
// mysqlPassword; postgresql-database: postgresqlUsername and
// postgresqlPassword), the password read from the testbed's password
// file, as the seeds' augment.nix does.
func (tb *Testbed) ContainersAugment() string {
	out := "# The database servers' credentials: added by the coordinator, never announced.\nrules:\n"
	if tb.hasContainer(ContainerMySQL) {
		out += fmt.Sprintf(`  - name: mysql-database credentials
    match:
      containers: [%[1]s]
    merge:
      containers:
        %[1]s:
          mysqlUsername: %[2]s
          mysqlPassword: {$file: %[3]q}
`, ContainerMySQL, MySQLUser, tb.MySQLPasswordFile())
	}
	if tb.hasContainer(ContainerPostgreSQL) {
		out += tb.pgAugmentRule()
	}
	return out
}

func (tb *Testbed) hasContainer(name string) bool {
	for _, c := range tb.cfg.Containers {
		if c == name {
			return true
		}
	}
	return false
}

// CheckContainers validates container names (Config.Containers) and, for
// mysql-database, that the MariaDB programs are installed.
func CheckContainers(cs []string) error {
	for _, c := range cs {
		if !knownContainers[c] {
			return fmt.Errorf("testbed: unknown container %q (the testbed runs: %s, %s)", c, ContainerMySQL, ContainerPostgreSQL)
		}
		if c == ContainerPostgreSQL {
			if err := pgUsable(); err != nil {
				return fmt.Errorf("testbed: %w", err)
			}
		}
		if c == ContainerMySQL {
			for _, p := range []string{"mariadbd", "mariadb-install-db"} {
				if _, err := lookPath(p); err != nil {
					return fmt.Errorf("testbed: container %s needs %s (package mariadb-server): %w", c, p, err)
				}
			}
		}
	}
	return nil
}

// lookPath finds a program on PATH or in /usr/sbin (mariadbd lives there,
// which is not on every user's PATH).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found on PATH nor in /usr/sbin", name)
	}
	return p, nil
}

// containerProps returns the announced properties of the containers a
// machine runs: no credentials (augmentation adds them).
func (tb *Testbed) containerProps(m *Machine) map[string]any {
	if len(tb.cfg.Containers) == 0 {
		return nil
	}
	out := map[string]any{}
	if tb.hasContainer(ContainerMySQL) {
		out[ContainerMySQL] = map[string]any{"mysqlPort": MySQLPort, "mysqlSocket": m.MySQLSocket()}
	}
	if tb.hasContainer(ContainerPostgreSQL) {
		out[ContainerPostgreSQL] = map[string]any{"postgresqlPort": PostgreSQLPort, "postgresqlSocket": m.PostgreSQLSocketDir()}
	}
	return out
}

// mysqlTemplate initialises, once per testbed, the data directory every
// machine's server starts from (a copy), and the administrator's password.
func (tb *Testbed) mysqlTemplate() (string, error) {
	tb.mysqlOnce.Do(func() {
		dir := filepath.Join(tb.cfg.Dir, "mysql-template")
		os.RemoveAll(dir)
		var pw [12]byte
		rand.Read(pw[:])
		if err := os.WriteFile(tb.MySQLPasswordFile(), []byte(hex.EncodeToString(pw[:])+"\n"), 0o600); err != nil {
			tb.mysqlErr = fmt.Errorf("testbed: write the MariaDB password: %w", err)
			return
		}
		install, err := lookPath("mariadb-install-db")
		if err != nil {
			tb.mysqlErr = err
			return
		}
		args := append([]string{"--no-defaults", "--datadir=" + dir, "--user=root", "--skip-test-db"}, mariadbArgs[:2]...)
		out, err := exec.Command(install, args...).CombinedOutput()
		if err != nil {
			tb.mysqlErr = fmt.Errorf("testbed: mariadb-install-db: %v\n%s", err, out)
			return
		}
		tb.mysqlDir = dir
	})
	return tb.mysqlDir, tb.mysqlErr
}

// startMySQL starts the MariaDB server of m in its namespace (a fresh data
// directory from the template, or the one it had before a crash or stop)
// and waits until it accepts connections: mariadbd reports READY=1 on a
// notification socket, as it does to systemd. Every start sets the
// administrator's password from the testbed's password file.
func (tb *Testbed) startMySQL(m *Machine) error {
	tmpl, err := tb.mysqlTemplate()
	if err != nil {
		return err
	}
	dir := m.MySQLDir()
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(data); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("machine %s: %w", m.Name, err)
		}
		if out, err := exec.Command("cp", "-a", tmpl, data).CombinedOutput(); err != nil {
			return fmt.Errorf("machine %s: copy the MariaDB data directory: %v: %s", m.Name, err, out)
		}
	}
	pw, err := os.ReadFile(tb.MySQLPasswordFile())
	if err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	p := strings.TrimSpace(string(pw))
	initSQL := fmt.Sprintf("ALTER USER '%[1]s'@'localhost' IDENTIFIED BY '%[2]s';\n"+
		"CREATE USER IF NOT EXISTS '%[1]s'@'127.0.0.1' IDENTIFIED BY '%[2]s';\n"+
		"GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'127.0.0.1' WITH GRANT OPTION;\n", MySQLUser, p)
	for _, a := range tb.cfg.MySQLAccounts {
		initSQL += fmt.Sprintf("CREATE USER IF NOT EXISTS '%[1]s'@'%%' IDENTIFIED BY '%[1]s';\n"+
			"GRANT ALL PRIVILEGES ON `%[1]s`.* TO '%[1]s'@'%%';\n", a)
	}
	initFile := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(initFile, []byte(initSQL), 0o600); err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	os.Remove(m.MySQLSocket())
	server, err := lookPath("mariadbd")
	if err != nil {
		return err
	}
	args := append([]string{"--no-defaults", "--user=root", "--datadir=" + data,
		"--socket=" + m.MySQLSocket(), "--port=" + fmt.Sprint(MySQLPort),
		"--bind-address=0.0.0.0", "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"), "--init-file=" + initFile}, mariadbArgs...)
	s, err := startNotified(m, m.Host.Command(server, args...), dir, filepath.Join(dir, "error.log"), syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("machine %s: mariadbd: %w", m.Name, err)
	}
	m.servers[ContainerMySQL] = s
	return nil
}

// startNotified starts cmd, a database server in m's namespace, with
// NOTIFY_SOCKET set to a datagram socket in dir, and waits until the
// server reports READY=1 there, as it does to systemd (mariadbd and
// postgres both do). stop is the signal of a clean, prompt shutdown. A
// server that exits first is an error with the end of its log.
func startNotified(m *Machine, cmd *exec.Cmd, dir, logFile string, stop syscall.Signal) (*dbServer, error) {
	notify := filepath.Join(dir, "notify.sock")
	os.Remove(notify)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notification socket: %w", err)
	}
	defer os.Remove(notify)
	defer conn.Close()
	// A server that drops its privileges must be able to write to it.
	if err := os.Chmod(notify, 0o666); err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &dbServer{cmd: cmd, stop: stop, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if bytes.Contains(buf[:n], []byte("READY=1")) {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
			return nil, err
		}
	case <-s.done:
		log, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("exited at start; its log ends:\n%s", tail(string(log), 10))
	}
	return s, nil
}

// stopServers shuts m's database servers down cleanly (as a machine's
// shutdown would) and waits for them; after a minute a server is killed.
func (m *Machine) stopServers() error {
	var errs []error
	for name, s := range m.servers {
		delete(m.servers, name)
		s.cmd.Process.Signal(s.stop)
		select {
		case <-s.done:
		case <-time.After(time.Minute):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
			errs = append(errs, fmt.Errorf("machine %s: the %s server did not shut down within a minute; killed", m.Name, name))
		}
	}
	return errors.Join(errs...)
}

// waitServers waits until m's database servers have exited (after a crash
// killed them).
func (m *Machine) waitServers() {
	for name, s := range m.servers {
		<-s.done
		delete(m.servers, name)
	}
}

// ServerRunning reports whether the machine's server of a container
// (ContainerMySQL, ContainerPostgreSQL) runs.
func (m *Machine) ServerRunning(container string) bool {
	s := m.servers[container]
	if s == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
