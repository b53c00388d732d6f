package dysnomia

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

func TestModuleContract(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mods := filepath.Join(dir, "modules")
	os.MkdirAll(mods, 0o755)
	// A module that records how it was called and what it was given.
	testenv.WriteExecutable(t, filepath.Join(mods, "recorder"), `#!/bin/sh
echo "$1 $2 $3 user=$mysqlUsername state=$DYSNOMIA_STATEDIR" >> "$DYSNOMIA_STATEDIR/calls"
`)
	testenv.WriteExecutable(t, filepath.Join(mods, "failing"), "#!/bin/sh\necho \"cannot $1 $(basename $2): disk full\" >&2\nexit 3\n")
	testenv.WriteExecutable(t, filepath.Join(mods, "hanging"), "#!/bin/sh\nsleep 600 &\nwait\n")
	os.WriteFile(filepath.Join(mods, "notexec"), []byte("#!/bin/sh\n"), 0o644)
	// A module on the path shadows the built-in of the same name.
	testenv.WriteExecutable(t, filepath.Join(mods, "mysql-database"), "#!/bin/sh\necho shadowed >> \"$DYSNOMIA_STATEDIR/calls\"\n")
	// A container-providing service ships its module in libexec/dysnomia/.
	provider := filepath.Join(dir, "provider")
	os.MkdirAll(filepath.Join(provider, "libexec", "dysnomia"), 0o755)
	testenv.WriteExecutable(t, filepath.Join(provider, "libexec", "dysnomia", "mycontainer"), "#!/bin/sh\necho \"provided $1 $3\" >> \"$DYSNOMIA_STATEDIR/calls\"\n")

	comp := filepath.Join(dir, "0123456789abcdef0123456789abcdef-web")
	os.MkdirAll(comp, 0o755)
	store := Store{Dir: filepath.Join(dir, "store")}
	call := func(typ, op string, timeout time.Duration) error {
		inv := &Invocation{Op: op, Component: comp, Container: "cont", Properties: map[string]string{"mysqlUsername": "app"},
			Store: store, Output: &bytes.Buffer{}}
		return Run(context.Background(), typ, "/nonexistent:"+mods, timeout, inv)
	}
	calls := func() string {
		b, _ := os.ReadFile(filepath.Join(store.Dir, "calls"))
		return string(b)
	}

	if err := call("recorder", OpSnapshot, 0); err != nil {
		t.Fatal(err)
	}
	if want := "snapshot " + comp + " cont user=app state=" + store.Dir + "\n"; calls() != want {
		t.Errorf("module called as %q, want %q", calls(), want)
	}
	if err := call("mysql-database", OpActivate, 0); err != nil || !strings.Contains(calls(), "shadowed") {
		t.Errorf("a module on DYSNOMIA_MODULES_PATH must come before the built-in: %v, calls %q", err, calls())
	}
	if err := call(provider, OpActivate, 0); err != nil || !strings.Contains(calls(), "provided activate cont") {
		t.Errorf("a type that is a directory: %v, calls %q", err, calls())
	}
	if err := call(filepath.Join(mods, "recorder"), OpLock, 0); err != nil || !strings.Contains(calls(), "lock "+comp) {
		t.Errorf("a type that is a file: %v", err)
	}

	for _, tc := range []struct {
		name, typ string
		timeout   time.Duration
		want      []string
	}{
		{"missing", "no-such-module", 0, []string{`no Dysnomia module for type "no-such-module"`, mods}},
		{"missing path", "/no/such/module", 0, []string{"/no/such/module", "no such file"}},
		{"not executable", "notexec", 0, []string{filepath.Join(mods, "notexec"), "not an executable"}},
		{"non-zero exit", "failing", 0, []string{"Dysnomia module " + filepath.Join(mods, "failing"), "activate of web", "exit status 3", "cannot activate", "disk full"}},
		{"hangs", "hanging", 200 * time.Millisecond, []string{"hanging", "activate of web", "timed out after 200ms", "killed"}},
		{"bad type", "../x", 0, []string{"a type is a name or a path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call(tc.typ, OpActivate, tc.timeout)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestComponentName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-usersdb":                               "usersdb",
		"/x/components/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-db": "db",
		"/x/my-db":      "my-db",
		"/x/usersdb":    "usersdb",
		"/x/ABCDEF-app": "ABCDEF-app",
	} {
		inv := Invocation{Component: in}
		if got := inv.ComponentName(); got != want {
			t.Errorf("ComponentName(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestStoreQueriesAndGC(t *testing.T) {
	t.Parallel()
	s := Store{Dir: t.TempDir()}
	add := func(c, x, content string) string {
		src := filepath.Join(s.Dir, "in")
		os.MkdirAll(src, 0o700)
		os.WriteFile(filepath.Join(src, "state"), []byte(content), 0o600)
		sum, _ := HashFile(filepath.Join(src, "state"))
		if err := s.Import(c, x, src, sum, "sha256:"+sum); err != nil {
			t.Fatal(err)
		}
		return Rel(c, x, sum)
	}
	a1 := add("mysql-database", "db", "one")
	a2 := add("mysql-database", "db", "two")
	if again := add("mysql-database", "db", "two"); again != a2 {
		t.Fatal(again)
	}
	b1 := add("fileset", "files", "x")
	all, err := s.QueryAll("", "", true)
	if err != nil || strings.Join(all, " ") != b1+" "+a1+" "+a2 {
		t.Fatalf("query-all: %v %v", all, err)
	}
	latest, _ := s.QueryLatest("mysql-database", "", false)
	if strings.Join(latest, " ") != a2 {
		t.Fatalf("query-latest: %v", latest)
	}
	p, err := s.Resolve(a1)
	if err != nil || p != filepath.Join(s.Dir, "snapshots", a1) {
		t.Fatalf("resolve: %s %v", p, err)
	}
	if _, err := s.Resolve("../../etc"); err == nil {
		t.Fatal("resolve accepted a path outside the store")
	}
	// A corrupt snapshot fails --check.
	os.WriteFile(filepath.Join(p, "state"), []byte("tampered"), 0o600)
	if _, err := s.QueryAll("", "db", true); err == nil || !strings.Contains(err.Error(), "fails its checksum") {
		t.Fatalf("query-all --check of a corrupt snapshot: %v", err)
	}
	removed, err := s.GC(1, "", "")
	if err != nil || strings.Join(removed, " ") != a1 {
		t.Fatalf("gc --keep 1: removed %v, %v", removed, err)
	}
	all, _ = s.QueryAll("", "", false)
	if strings.Join(all, " ") != b1+" "+a2 {
		t.Fatalf("after gc: %v", all)
	}
	if removed, _ := s.GC(0, "fileset", ""); len(removed) != 1 {
		t.Fatalf("gc --keep 0 --container fileset: %v", removed)
	}
}

func TestWrapperModule(t *testing.T) {
	t.Parallel()
	comp := filepath.Join(t.TempDir(), "0123456789abcdef0123456789abcdef-nginx")
	os.MkdirAll(filepath.Join(comp, "bin"), 0o755)
	out := filepath.Join(t.TempDir(), "out")
	testenv.WriteExecutable(t, filepath.Join(comp, "bin", "wrapper"), "#!/bin/sh\necho \"$1 $2 port=$port\" >> "+out+"\n[ \"$1\" != restore ] || { echo 'no snapshot' >&2; exit 2; }\n")
	store := Store{Dir: t.TempDir()}
	run := func(op, component string) error {
		inv := &Invocation{Op: op, Component: component, Container: "web", Properties: map[string]string{"port": "8080"}, Store: store}
		return Run(context.Background(), "wrapper", "", 0, inv)
	}
	if err := run(OpActivate, comp); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "activate web port=8080\n" {
		t.Errorf("the wrapper was called as %q, want \"activate web port=8080\"", b)
	}
	if err := run(OpRestore, comp); err == nil || !strings.Contains(err.Error(), "no snapshot") || !strings.Contains(err.Error(), "wrapper: restore of nginx") {
		t.Errorf("a failing wrapper: %v", err)
	}
	if err := run(OpActivate, t.TempDir()); err == nil || !strings.Contains(err.Error(), "bin/wrapper is missing") {
		t.Errorf("a component without bin/wrapper: %v", err)
	}
}
