package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/dbtest"
	"github.com/dydisnix/dydisnix/testbed/services/internal/svcenv"
)

// newTestApp starts a private MariaDB server with the web system's usersdb
// and cmsdb (schema from testbed/services/websystem, accounts as the
// testbed's servers provide them) and the cms application on it.
func newTestApp(t *testing.T) (*httptest.Server, *dbtest.Server) {
	t.Helper()
	s := dbtest.MariaDB(t)
	for _, db := range []string{"usersdb", "cmsdb"} {
		schema, err := os.ReadFile(filepath.Join("..", "websystem", db, "mysql-databases", db+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		s.SQL(t, fmt.Sprintf("CREATE DATABASE %[1]s; CREATE USER '%[1]s'@'%%' IDENTIFIED BY '%[1]s'; GRANT ALL ON %[1]s.* TO '%[1]s'@'%%'; USE %[1]s; %s", db, schema))
	}
	s.SQL(t, "INSERT INTO usersdb.users (owner, body) VALUES ('admin', 'alice')")
	port := strconv.Itoa(s.Port)
	env, err := svcenv.FromEnviron([]string{"DYDISNIX_SERVICE=cms", "DYDISNIX_STATE_DIR=" + t.TempDir(),
		"DYDISNIX_PROP_APPNAME=CMS", "DYDISNIX_PROP_DB=cmsdb", "DYDISNIX_PROP_USERSDB=usersdb",
		"DYDISNIX_DEP_CMSDB_TARGET=127.0.0.1", "DYDISNIX_DEP_CMSDB_MYSQLPORT=" + port,
		"DYDISNIX_DEP_USERSDB_TARGET=127.0.0.1", "DYDISNIX_DEP_USERSDB_MYSQLPORT=" + port})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	srv := httptest.NewServer(a.handler(log.New(io.Discard, "", 0)))
	t.Cleanup(srv.Close)
	return srv, s
}

func call(t *testing.T, method, url, user, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestRecordsAndFiles: the application checks a record's owner in the
// users database, stores records in its own and reports their count and
// the checksum the demo recomputes from what it wrote (SHA-256 over
// "id\towner\tbody\n" in id order); uploaded files likewise; /healthz
// fails once its database is gone.
func TestRecordsAndFiles(t *testing.T) {
	srv, s := newTestApp(t)
	h := sha256.New()
	for i, tc := range []struct {
		user, body string
		code       int
	}{
		{"alice", "first", http.StatusOK},
		{"mallory", "refused", http.StatusForbidden},
		{"alice", "second", http.StatusOK},
		{"", "by admin: no such user", http.StatusForbidden},
	} {
		code, out := call(t, http.MethodPost, srv.URL+"/records", tc.user, tc.body)
		if code != tc.code {
			t.Fatalf("record %d by %q: %d %s, want %d", i, tc.user, code, out, tc.code)
		}
		if code == http.StatusOK {
			fmt.Fprintf(h, "%s\t%s\t%s\n", strings.TrimSpace(out), tc.user, tc.body)
		}
	}
	_, out := call(t, http.MethodGet, srv.URL+"/summary", "", "")
	var sum Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	if want := (Summary{"cmsdb", "records", 2, hex.EncodeToString(h.Sum(nil))}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if got := s.SQL(t, "SELECT COUNT(*) FROM cmsdb.records"); got != "2" {
		t.Errorf("cmsdb.records holds %s rows, want 2", got)
	}

	if code, out := call(t, http.MethodPut, srv.URL+"/files/a.txt", "", "hello"); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, out)
	}
	if code, _ := call(t, http.MethodPut, srv.URL+"/files/..hidden", "", "x"); code != http.StatusBadRequest {
		t.Errorf("upload of ..hidden: %d, want 400", code)
	}
	fh := sha256.New()
	fmt.Fprintf(fh, "a.txt\t5\t%x\n", sha256.Sum256([]byte("hello")))
	_, out = call(t, http.MethodGet, srv.URL+"/files", "", "")
	var fs FilesSummary
	json.Unmarshal([]byte(out), &fs)
	if want := (FilesSummary{1, hex.EncodeToString(fh.Sum(nil))}); fs != want {
		t.Errorf("files %+v, want %+v", fs, want)
	}
	if code, body := call(t, http.MethodGet, srv.URL+"/files/a.txt", "", ""); code != http.StatusOK || body != "hello" {
		t.Errorf("GET /files/a.txt: %d %q", code, body)
	}

	if code, out := call(t, http.MethodGet, srv.URL+"/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d %s", code, out)
	}
	if code, body := call(t, http.MethodGet, srv.URL+"/", "", ""); code != http.StatusOK || !strings.Contains(body, "2 records in cmsdb.records") {
		t.Errorf("page: %d\n%s", code, body)
	}
}

// TestHealthWithoutDatabase: /healthz answers 503, naming the database,
// while the database does not answer.
func TestHealthWithoutDatabase(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now
	env, err := svcenv.FromEnviron([]string{"DYDISNIX_SERVICE=cms", "DYDISNIX_PROP_DB=cmsdb",
		"DYDISNIX_DEP_CMSDB_TARGET=127.0.0.1", "DYDISNIX_DEP_CMSDB_MYSQLPORT=" + port})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(env)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	srv := httptest.NewServer(a.handler(log.New(io.Discard, "", 0)))
	defer srv.Close()
	if code, body := call(t, http.MethodGet, srv.URL+"/healthz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "cmsdb") {
		t.Errorf("healthz without its database: %d %s, want 503 naming cmsdb", code, body)
	}
}

// TestBadConfiguration: a bad table name or database port is refused
// with a message naming it.
func TestBadConfiguration(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"DYDISNIX_PROP_TABLE=x;drop", "table"},
		{"DYDISNIX_DEP_CMSDB_MYSQLPORT=99999", "mysqlPort"},
		{"DYDISNIX_DEP_CMSDB_TARGET=", "CMSDB_TARGET"},
	} {
		vars := []string{"DYDISNIX_PROP_DB=cmsdb", "DYDISNIX_DEP_CMSDB_TARGET=127.0.0.1", tc.env}
		env, err := svcenv.FromEnviron(vars)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newApp(env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
}
