// Command webapp is the testbed's web application, in the shape of the
// seeds' realistic example (php-sbexampleapps): an application that keeps
// its records in a MariaDB database of its own, checks its users in the
// shared users database, and keeps uploaded files in its files directory
// (DYDISNIX_STATE_DIR/files, which moves with the service). The same
// program is the portal: a page on every application it connectsTo.
//
// Service properties (DYDISNIX_PROP_<NAME>):
//
//	appName   the application's title
//	port      the port it listens on
//	db        the dependency holding its records (a mysql-database service)
//	usersDb   the dependency holding the users (default: db)
//	table     the table of its records (default "records")
//
// A database dependency D is reached at DYDISNIX_DEP_<D>_TARGET, port
// DYDISNIX_DEP_<D>_MYSQLPORT (default 3306), database and credentials
// DYDISNIX_DEP_<D>_DBNAME (default the dependency's name): as in the
// seeds, the database's user and password are its name (the database's
// SQL script creates them).
//
//	POST /records       body: the record; header X-User: an existing user
//	                    (not checked for the users table itself)
//	GET  /summary       {"database","table","rows","checksum"} of its table
//	PUT  /files/NAME    stores an uploaded file; GET /files/NAME reads it
//	GET  /files         {"files","checksum"} over every file
//	GET  /healthz       200 when every database it uses answers
//	GET  /              a page: the application, its records and files
//	                    (the portal: every application it connectsTo)
package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dydisnix/dydisnix/testbed/services/internal/svcenv"
)

func main() {
	svcenv.Main("webapp", run)
}

// app is one running application.
type app struct {
	name     string
	records  *database // nil for the portal
	users    *database // nil when it has none
	table    string
	filesDir string
	peers    []peer
	client   *http.Client
}

// database is a connection pool to one dependency's database.
type database struct {
	service, name, addr string
	db                  *sql.DB
}

// peer is an application the portal links to (connectsTo).
type peer struct{ Name, URL string }

func run(ctx context.Context, env *svcenv.Env, logger *log.Logger) error {
	addr, err := env.ListenAddr()
	if err != nil {
		return err
	}
	a, err := newApp(env)
	if err != nil {
		return err
	}
	defer a.close()
	for _, d := range []*database{a.records, a.users} {
		if d != nil {
			logger.Printf("database %s (%s) at %s", d.name, d.service, d.addr)
		}
	}
	return svcenv.Serve(ctx, addr, a.handler(logger), func(l net.Addr) { logger.Printf("%s listening on %s", a.name, l) })
}

// newApp reads the application's configuration from env and opens its
// database pools (no connection is made yet).
func newApp(env *svcenv.Env) (*app, error) {
	a := &app{name: env.Service, table: "records", client: &http.Client{Timeout: 2 * time.Second}}
	if v, ok := env.Prop("appName"); ok {
		a.name = v
	}
	if v, ok := env.Prop("table"); ok {
		if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(v) {
			return nil, fmt.Errorf("property table=%q: expected an SQL name", v)
		}
		a.table = v
	}
	var err error
	dbName, hasDB := env.Prop("db")
	usersName, hasUsers := env.Prop("usersDb")
	if hasDB {
		if a.records, err = openDB(env, dbName); err != nil {
			return nil, err
		}
		if !hasUsers {
			a.users = a.records
		}
	}
	if hasUsers && hasDB && usersName == dbName {
		a.users = a.records
	} else if hasUsers {
		if a.users, err = openDB(env, usersName); err != nil {
			a.close()
			return nil, err
		}
	}
	if env.StateDir != "" {
		a.filesDir = filepath.Join(env.StateDir, "files")
		if err := os.MkdirAll(a.filesDir, 0o755); err != nil {
			a.close()
			return nil, fmt.Errorf("files directory: %w", err)
		}
	}
	if a.records == nil {
		a.peers = peers(env)
	}
	return a, nil
}

// close closes the database pools.
func (a *app) close() {
	if a.records != nil {
		a.records.db.Close()
	}
	if a.users != nil && a.users != a.records {
		a.users.db.Close()
	}
}

// openDB opens the pool of the database dependency service.
func openDB(env *svcenv.Env, service string) (*database, error) {
	enc := svcenv.EnvName(service)
	get := func(n string) (string, bool) { return env.Get(svcenv.PrefixDep + enc + "_" + n) }
	host, ok := get("TARGET")
	if !ok {
		return nil, fmt.Errorf("database %q: %s%s_TARGET is not set (is it in dependsOn?)", service, svcenv.PrefixDep, enc)
	}
	port := "3306"
	if p, ok := get("MYSQLPORT"); ok {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("database %q: mysqlPort %q: expected a port number", service, p)
		}
		port = p
	}
	name := service
	if n, ok := get("DBNAME"); ok {
		name = n
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = name, name, name
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("database %q: %w", service, err)
	}
	db.SetConnMaxLifetime(time.Minute)
	return &database{service: service, name: name, addr: cfg.Addr, db: db}, nil
}

// peers lists the applications of connectsTo with their pages.
func peers(env *svcenv.Env) []peer {
	var out []peer
	for _, name := range env.Deps() {
		d, err := env.Dep(name)
		if err != nil {
			continue
		}
		out = append(out, peer{Name: name, URL: "http://" + d.Addr() + "/"})
	}
	return out
}

// Summary is a table's row count and checksum (SHA-256 over its rows in
// id order).
type Summary struct {
	Database string `json:"database"`
	Table    string `json:"table"`
	Rows     int    `json:"rows"`
	Checksum string `json:"checksum"`
}

func (a *app) summary(ctx context.Context) (Summary, error) {
	s := Summary{Database: a.records.name, Table: a.table}
	rows, err := a.records.db.QueryContext(ctx, "SELECT id, owner, body FROM "+a.table+" ORDER BY id")
	if err != nil {
		return s, err
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var id int64
		var owner, body string
		if err := rows.Scan(&id, &owner, &body); err != nil {
			return s, err
		}
		fmt.Fprintf(h, "%d\t%s\t%s\n", id, owner, body)
		s.Rows++
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	s.Checksum = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// FilesSummary is the number of uploaded files and a checksum over their
// names and contents.
type FilesSummary struct {
	Files    int    `json:"files"`
	Checksum string `json:"checksum"`
}

func (a *app) filesSummary() (FilesSummary, error) {
	var s FilesSummary
	entries, err := os.ReadDir(a.filesDir)
	if err != nil {
		return s, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(a.filesDir, n))
		if err != nil {
			return s, err
		}
		fmt.Fprintf(h, "%s\t%d\t%x\n", n, len(data), sha256.Sum256(data))
	}
	s.Files, s.Checksum = len(names), hex.EncodeToString(h.Sum(nil))
	return s, nil
}

var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

func (a *app) handler(logger *log.Logger) http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, code int, err error) {
		logger.Print(err)
		http.Error(w, err.Error(), code)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, d := range []*database{a.records, a.users} {
			if d == nil {
				continue
			}
			if err := d.db.PingContext(ctx); err != nil {
				fail(w, http.StatusServiceUnavailable, fmt.Errorf("database %s at %s: %w", d.name, d.addr, err))
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /records", func(w http.ResponseWriter, r *http.Request) {
		if a.records == nil {
			http.Error(w, a.name+" keeps no records", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil || len(body) == 0 {
			http.Error(w, "a record is the request body (at most 64 KiB)", http.StatusBadRequest)
			return
		}
		user := r.Header.Get("X-User")
		if user == "" {
			user = "admin"
		}
		if a.users != a.records {
			var n int
			if err := a.users.db.QueryRowContext(r.Context(), "SELECT COUNT(*) FROM users WHERE body = ?", user).Scan(&n); err != nil {
				fail(w, http.StatusBadGateway, fmt.Errorf("users database: %w", err))
				return
			}
			if n == 0 {
				http.Error(w, fmt.Sprintf("no user %q", user), http.StatusForbidden)
				return
			}
		}
		res, err := a.records.db.ExecContext(r.Context(), "INSERT INTO "+a.table+" (owner, body) VALUES (?, ?)", user, string(body))
		if err != nil {
			fail(w, http.StatusBadGateway, fmt.Errorf("insert: %w", err))
			return
		}
		id, _ := res.LastInsertId()
		fmt.Fprintln(w, id)
	})
	mux.HandleFunc("GET /summary", func(w http.ResponseWriter, r *http.Request) {
		if a.records == nil {
			http.Error(w, a.name+" keeps no records", http.StatusNotFound)
			return
		}
		s, err := a.summary(r.Context())
		if err != nil {
			fail(w, http.StatusBadGateway, fmt.Errorf("summary: %w", err))
			return
		}
		writeJSON(w, s)
	})
	mux.HandleFunc("PUT /files/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if a.filesDir == "" || !fileName.MatchString(name) {
			http.Error(w, fmt.Sprintf("bad file name %q (letters, digits, . _ -)", name), http.StatusBadRequest)
			return
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tmp := filepath.Join(a.filesDir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		if err := os.Rename(tmp, filepath.Join(a.filesDir, name)); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /files/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if a.filesDir == "" || !fileName.MatchString(name) {
			http.Error(w, "no such file", http.StatusNotFound)
			return
		}
		http.ServeFile(w, r, filepath.Join(a.filesDir, name))
	})
	mux.HandleFunc("GET /files", func(w http.ResponseWriter, r *http.Request) {
		if a.filesDir == "" {
			writeJSON(w, FilesSummary{})
			return
		}
		s, err := a.filesSummary()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, s)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { a.page(w, r) })
	return mux
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><title>{{.Name}}</title></head><body>
<h1>{{.Name}}</h1>
{{if .Summary}}<p>{{.Summary.Rows}} records in {{.Summary.Database}}.{{.Summary.Table}}</p>{{end}}
{{if .Error}}<p>Database: {{.Error}}</p>{{end}}
{{if .Files}}<p>{{.Files.Files}} uploaded files</p>{{end}}
{{if .Peers}}<ul>{{range .Peers}}<li><a href="{{.URL}}">{{.Name}}</a>: {{.State}}</li>{{end}}</ul>{{end}}
</body></html>
`))

func (a *app) page(w http.ResponseWriter, r *http.Request) {
	type peerState struct{ Name, URL, State string }
	data := struct {
		Name    string
		Summary *Summary
		Files   *FilesSummary
		Error   string
		Peers   []peerState
	}{Name: a.name}
	if a.records != nil {
		if s, err := a.summary(r.Context()); err != nil {
			data.Error = err.Error()
		} else {
			data.Summary = &s
		}
	}
	if a.filesDir != "" {
		if s, err := a.filesSummary(); err == nil && s.Files > 0 {
			data.Files = &s
		}
	}
	for _, p := range a.peers {
		state := "up"
		resp, err := a.client.Get(p.URL + "healthz")
		switch {
		case err != nil:
			state = "unreachable"
		case resp.StatusCode != http.StatusOK:
			state = resp.Status
		}
		if resp != nil {
			resp.Body.Close()
		}
		data.Peers = append(data.Peers, peerState{p.Name, p.URL, state})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, data); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		log.Print(err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
