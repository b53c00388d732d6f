// Package dbtest starts private, real database servers for tests: a
// MariaDB (mariadbd) or a PostgreSQL server with its data in a temporary
// directory, listening on a unix socket in it and on a loopback port. The
// servers are stopped (and their data removed) when the test ends. When
// the server programs are missing the test is skipped, or fails under
// DYDISNIX_REQUIRE_ALL=1 (internal/testenv.Missing): CI installs them.
package dbtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// Server is a running database server.
type Server struct {
	// Dir holds the data directory and the socket.
	Dir string
	// Socket is the unix socket (MariaDB) or the socket directory (PostgreSQL).
	Socket string
	// Port is the loopback TCP port.
	Port int
	// User and Password are the administrator's credentials.
	User, Password string
	cmd            *exec.Cmd
	exited         chan struct{}
	log            string
}

// findProgram looks a server program up on PATH, then in dirs.
func findProgram(name string, dirs ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// shortTempDir returns a temporary directory with a short path (a unix
// socket path must fit in 108 bytes), removed when the test ends.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func run(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// start runs the server and waits until ready() succeeds, the server
// exits (the test fails with its log) or a minute passes.
func (s *Server) start(t testing.TB, cmd *exec.Cmd, ready func() error) {
	t.Helper()
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	logf.Close()
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.log)
			t.Fatalf("%s exited during start-up: %s", filepath.Base(cmd.Path), b)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log)
			t.Fatalf("%s not ready after a minute (%v): %s", filepath.Base(cmd.Path), err, b)
		}
	}
}

// stop terminates the server (SIGTERM to its process group, SIGKILL
// after 20 s) and waits for it.
func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// MariaDB starts a private MariaDB server: root's password is set and
// root may connect on the socket and on 127.0.0.1:Port.
func MariaDB(t testing.TB) *Server {
	t.Helper()
	mariadbd := findProgram("mariadbd", "/usr/sbin", "/usr/libexec")
	install := findProgram("mariadb-install-db", "/usr/bin", "/usr/scripts")
	client := findProgram("mariadb", "/usr/bin")
	if mariadbd == "" || install == "" || client == "" {
		testenv.Missing(t, "MariaDB (mariadbd, mariadb-install-db, mariadb) is not installed (.ci/run installs mariadb-server and mariadb-client)")
	}
	testenv.NeedCommand(t, "mysqldump")
	dir := shortTempDir(t, "mdb")
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "mysqld.sock"), Port: testenv.Port(t), User: "root", Password: "dydisnix-test-pw",
		log: filepath.Join(dir, "mariadbd.log")}
	data := filepath.Join(dir, "data")
	asRoot := os.Geteuid() == 0
	// A private tmpdir: another server's temporary tables never collide.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if asRoot {
		args = append(args, "--user=root")
	}
	run(t, exec.Command(install, args...))
	sargs := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp, "--socket=" + s.Socket, "--port=" + strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1", "--skip-name-resolve", "--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M", "--skip-log-bin", "--max-allowed-packet=64M"}
	if asRoot {
		sargs = append(sargs, "--user=root")
	}
	ready := func() error {
		return exec.Command(client, "--no-defaults", "--protocol=socket", "--socket="+s.Socket, "-uroot", "-e", "SELECT 1").Run()
	}
	s.start(t, exec.Command(mariadbd, sargs...), ready)
	pw := s.Password
	run(t, exec.Command(client, "--no-defaults", "--protocol=socket", "--socket="+s.Socket, "-uroot", "-e",
		fmt.Sprintf("ALTER USER 'root'@'localhost' IDENTIFIED BY '%[1]s'; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '%[1]s'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;", pw)))
	return s
}

// SQL runs statements on a MariaDB server as its administrator (through
// the socket) and returns the output (tab-separated, no column names).
func (s *Server) SQL(t testing.TB, stmts string) string {
	t.Helper()
	cmd := exec.Command(findProgram("mariadb", "/usr/bin"), "--no-defaults", "--protocol=socket", "--socket="+s.Socket, "-u"+s.User,
		"--batch", "--skip-column-names", "-e", stmts)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+s.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("SQL %q: %v: %s", stmts, err, out)
	}
	return strings.TrimSpace(string(out))
}

// MySQLProperties are the container properties of the server for the
// mysql-database module (socket and port both given).
func (s *Server) MySQLProperties() map[string]string {
	return map[string]string{"mysqlUsername": s.User, "mysqlPassword": s.Password, "mysqlSocket": s.Socket, "mysqlPort": strconv.Itoa(s.Port)}
}

// pgBinDirs are where Debian installs the PostgreSQL server programs.
func pgBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest version first.
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// PostgreSQL starts a private PostgreSQL server. The server cannot run
// as root: when the test runs as root, the data directory is given to
// the user nobody and the server runs as nobody. The administrator is
// "postgres" with Password; connections on the socket are trusted, TCP
// connections need the password.
func PostgreSQL(t testing.TB) *Server {
	t.Helper()
	initdb := findProgram("initdb", pgBinDirs()...)
	postgres := findProgram("postgres", pgBinDirs()...)
	psql := findProgram("psql", pgBinDirs()...)
	if initdb == "" || postgres == "" || psql == "" {
		testenv.Missing(t, "PostgreSQL (initdb, postgres, psql) is not installed (.ci/run installs postgresql)")
	}
	testenv.NeedCommand(t, "pg_dump", "psql")
	dir := shortTempDir(t, "pg")
	s := &Server{Dir: dir, Socket: dir, Port: testenv.Port(t), User: "postgres", Password: "dydisnix-test-pw", log: filepath.Join(dir, "postgres.log")}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asUser := func(c *exec.Cmd) *exec.Cmd {
		c.Dir = dir
		if cred != nil {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return c
	}
	run(t, asUser(exec.Command(initdb, "-D", data, "-U", "postgres", "--pwfile="+pwfile, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")))
	os.Remove(pwfile)
	cmd := asUser(exec.Command(postgres, "-D", data, "-k", dir, "-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"))
	ready := func() error {
		out, err := exec.Command(psql, "-X", "-h", dir, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", "postgres", "-tAc", "SELECT 1").CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)))
		}
		return nil
	}
	s.start(t, cmd, ready)
	return s
}

// PSQL runs statements on a PostgreSQL server as postgres in database db
// and returns the output (unaligned, tuples only).
func (s *Server) PSQL(t testing.TB, db, stmts string) string {
	t.Helper()
	out, err := exec.Command(findProgram("psql", pgBinDirs()...), "-X", "-v", "ON_ERROR_STOP=1", "-h", s.Socket, "-p", strconv.Itoa(s.Port),
		"-U", s.User, "-d", db, "-tAc", stmts).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v: %s", stmts, err, out)
	}
	return strings.TrimSpace(string(out))
}

// PostgreSQLProperties are the container properties of the server for
// the postgresql-database module.
func (s *Server) PostgreSQLProperties() map[string]string {
	return map[string]string{"postgresqlUsername": s.User, "postgresqlPassword": s.Password, "postgresqlSocket": s.Socket, "postgresqlPort": strconv.Itoa(s.Port)}
}
