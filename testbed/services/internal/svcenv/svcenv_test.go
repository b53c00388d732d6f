package svcenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEnvName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"port": "PORT", "peer-a": "PEER_A", "chordBootstrap": "CHORDBOOTSTRAP", "a.b c": "A_B_C", "x_1": "X_1"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  []string
		want string
		err  string
	}{
		{"default bind", []string{"DYDISNIX_PROP_PORT=8080"}, "0.0.0.0:8080", ""},
		{"host", []string{"DYDISNIX_PROP_PORT=8080", "DYDISNIX_PROP_HOST=127.0.0.1"}, "127.0.0.1:8080", ""},
		{"bind wins", []string{"DYDISNIX_PROP_PORT=1", "DYDISNIX_PROP_HOST=10.0.0.1", "DYDISNIX_PROP_BIND=::1"}, "[::1]:1", ""},
		{"no port", nil, "", "PORT is not set"},
		{"bad port", []string{"DYDISNIX_PROP_PORT=99999"}, "", "expected a port number"},
	}
	for _, c := range cases {
		e, err := FromEnviron(c.env)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.ListenAddr()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
}

func TestDep(t *testing.T) {
	t.Parallel()
	ctxFile := filepath.Join(t.TempDir(), "ctx.json")
	os.WriteFile(ctxFile, []byte(`{"service": "web", "dependsOn": {"kv-store": {"name": "kv-store", "targets": [{"target": "t1", "host": "10.0.0.7"}]}}, "connectsTo": {}}`), 0o600)
	cases := []struct {
		name    string
		env     []string
		service string
		want    Dep
		err     string
	}{
		{"target host", []string{"DYDISNIX_DEP_KV_TARGET=t1.local", "DYDISNIX_DEP_KV_PORT=80"}, "kv",
			Dep{Service: "kv", Target: "t1.local", Host: "t1.local", Port: 80}, ""},
		{"host property wins", []string{"DYDISNIX_DEP_KV_TARGET=t1", "DYDISNIX_DEP_KV_PORT=80", "DYDISNIX_DEP_KV_HOST=1.2.3.4"}, "kv",
			Dep{Service: "kv", Target: "t1", Host: "1.2.3.4", Port: 80}, ""},
		{"address property", []string{"DYDISNIX_DEP_KV_TARGET=t1", "DYDISNIX_DEP_KV_PORT=80", "DYDISNIX_DEP_KV_ADDRESS=5.6.7.8"}, "kv",
			Dep{Service: "kv", Target: "t1", Host: "5.6.7.8", Port: 80}, ""},
		{"context host", []string{"DYDISNIX_DEP_KV_STORE_TARGET=t1", "DYDISNIX_DEP_KV_STORE_PORT=81", "DYDISNIX_CONTEXT=" + ctxFile}, "kv-store",
			Dep{Service: "kv-store", Target: "t1", Host: "10.0.0.7", Port: 81}, ""},
		{"missing", nil, "kv", Dep{}, "DYDISNIX_DEP_KV_TARGET is not set"},
		{"no port", []string{"DYDISNIX_DEP_KV_TARGET=t1"}, "kv", Dep{}, "DYDISNIX_DEP_KV_PORT is not set"},
	}
	for _, c := range cases {
		e, err := FromEnviron(c.env)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Dep(c.service)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDepsAndPick(t *testing.T) {
	t.Parallel()
	e, _ := FromEnviron([]string{"DYDISNIX_DEP_A_TARGET=x", "DYDISNIX_DEP_B_TARGET=y", "DYDISNIX_DEP_B_TARGETNAME=y"})
	if got := e.Deps(); !reflect.DeepEqual(got, []string{"A", "B"}) {
		t.Errorf("Deps = %v", got)
	}
	if _, err := e.Pick("peer", ""); err == nil {
		t.Error("Pick with two dependencies and no property gave no error")
	}
	if got, _ := e.Pick("peer", "dflt"); got != "dflt" {
		t.Errorf("Pick default = %q", got)
	}
	e, _ = FromEnviron([]string{"DYDISNIX_DEP_A_TARGET=x", "DYDISNIX_PROP_PEER=zz"})
	if got, _ := e.Pick("peer", ""); got != "zz" {
		t.Errorf("Pick by property = %q", got)
	}
	e, _ = FromEnviron([]string{"DYDISNIX_DEP_A_TARGET=x"})
	if got, _ := e.Pick("peer", ""); got != "A" {
		t.Errorf("Pick only dependency = %q", got)
	}
	if _, err := FromEnviron([]string{"DYDISNIX_CONTEXT=/nonexistent/ctx.json"}); err == nil {
		t.Error("unreadable context gave no error")
	}
}
