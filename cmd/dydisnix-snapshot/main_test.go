package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/dysnomia"
	"github.com/dydisnix/dydisnix/internal/cli/clitest"
	"github.com/dydisnix/dydisnix/model"
)

func TestSnapshotIntoStore(t *testing.T) {
	dir := t.TempDir()
	url, tok := clitest.StartAgent(t, dir)
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": url}, Extra: map[string]any{}}}
	svcs := model.Services{"db": {Name: "db", Type: "echo", Attrs: map[string]any{"deployState": true}}}
	st := filepath.Join(dir, "st")
	clitest.Deploy(t, st, svcs, infra, model.Distribution{"db": {{Target: "t1"}}})
	store, err := deployer.OpenStore(st, 3)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "agent", "state", "db"), 0o700)
	os.WriteFile(filepath.Join(dir, "agent", "state", "db", "data"), []byte("rows"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"--agent-token-file", tok, "--insecure-http", "--state-dir", st}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "db sha256:") {
		t.Errorf("output %q", out.String())
	}
	info, ok, err := store.LatestSnapshot("db")
	if err != nil || !ok || info.Generation != 1 {
		t.Fatalf("store: %+v %v %v", info, ok, err)
	}
	// Usage errors exit 2; no deployment exits 1.
	if code := run([]string{}, &out, &errb); code != 2 {
		t.Errorf("no token: %d", code)
	}
	if code := run([]string{"--agent-token-file", tok, "--insecure-http", "--state-dir", filepath.Join(dir, "empty")}, &out, &errb); code != 1 {
		t.Errorf("empty state dir: %d", code)
	}
}

func TestStoreQueries(t *testing.T) {
	dir := t.TempDir()
	url, tok := clitest.StartAgent(t, dir)
	infra := model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"agentURL": url}, Extra: map[string]any{}}}
	svcs := model.Services{"db": {Name: "db", Type: "echo", Attrs: map[string]any{"deployState": true}}}
	st := filepath.Join(dir, "st")
	clitest.Deploy(t, st, svcs, infra, model.Distribution{"db": {{Target: "t1"}}})
	store, err := deployer.OpenStore(st, 5)
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, content := range []string{"one", "two", "three"} {
		info, err := store.PutSnapshot("db", "", strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, "db/"+strings.TrimPrefix(info.Digest, "sha256:")+".tar.gz")
	}
	// The target's Dysnomia store, as a module leaves it.
	ds := dysnomia.Store{Dir: filepath.Join(dir, "agent", "dysnomia")}
	var trels []string
	for _, content := range []string{"dump1", "dump2"} {
		src := filepath.Join(dir, "in")
		os.MkdirAll(src, 0o700)
		os.WriteFile(filepath.Join(src, "dump.sql.gz"), []byte(content), 0o600)
		sum, _ := dysnomia.HashFile(filepath.Join(src, "dump.sql.gz"))
		if err := ds.Import("mysql-database", "db", src, sum, "sha256:"+sum); err != nil {
			t.Fatal(err)
		}
		trels = append(trels, dysnomia.Rel("mysql-database", "db", sum))
	}
	base := []string{"--agent-token-file", tok, "--insecure-http", "--state-dir", st}
	query := func(args ...string) (string, int, string) {
		var out, errb bytes.Buffer
		code := run(append(append([]string(nil), base...), args...), &out, &errb)
		return strings.TrimSpace(out.String()), code, errb.String()
	}
	lines := func(s ...string) string { return strings.Join(s, "\n") }
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"coordinator query-all", []string{"--query-all"}, lines(rels...), 0},
		{"coordinator query-latest", []string{"--query-latest"}, rels[2], 0},
		{"coordinator resolve", []string{"--resolve", rels[0]}, store.SnapshotPath("db", strings.TrimSuffix(strings.TrimPrefix(rels[0], "db/"), ".tar.gz")), 0},
		{"coordinator resolve missing", []string{"--resolve", "db/" + strings.Repeat("0", 64) + ".tar.gz"}, "", 1},
		{"target query-all", []string{"--target", "t1", "--query-all", "--check"}, lines(trels...), 0},
		{"target query-latest", []string{"--target", "t1", "--query-latest", "--container", "mysql-database"}, trels[1], 0},
		{"target resolve", []string{"--target", "t1", "--resolve", trels[0]}, ds.SnapshotDir("mysql-database", "db", strings.TrimPrefix(trels[0], "mysql-database/db/")), 0},
		{"target gc", []string{"--target", "t1", "--gc"}, trels[0], 0},
		{"target after gc", []string{"--target", "t1", "--query-all"}, trels[1], 0},
		{"unknown target", []string{"--target", "t9", "--query-all"}, "", 1},
		{"coordinator gc keep 2", []string{"--gc", "--keep", "2"}, rels[0], 0},
		{"coordinator after gc", []string{"--query-all", "--format", "json"}, "[\n  \"" + rels[1] + "\",\n  \"" + rels[2] + "\"\n]", 0},
		{"two operations", []string{"--query-all", "--gc"}, "", 2},
		{"resolve without paths", []string{"--resolve"}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code, errs := query(tc.args...)
			if code != tc.code || (tc.code == 0 && out != tc.want) {
				t.Errorf("%v: exit %d (%s), output\n%s\nwant exit %d, output\n%s", tc.args, code, errs, out, tc.code, tc.want)
			}
		})
	}
}
