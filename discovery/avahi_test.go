package discovery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/model"
)

// syncBuffer collects a process's output for polling.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
`

const avahiConfig = `[server]
host-name=%s
use-ipv4=yes
use-ipv6=no
allow-interfaces=%s
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
`

// startAvahi runs a private dbus-daemon and avahi-daemon in the node: the
// bus socket lives in the test's temporary directory (clients find it via
// DBUS_SYSTEM_BUS_ADDRESS) and avahi-daemon gets a private /run in its own
// mount namespace for its pid file and socket. It returns the environment
// for avahi clients.
func startAvahi(t *testing.T, nd *netns.Node) []string {
	for _, tool := range []string{"avahi-daemon", "avahi-publish", "avahi-browse", "dbus-daemon", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s is not installed (apt-get install avahi-daemon avahi-utils dbus)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "ddavahi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bus := filepath.Join(dir, "bus")
	busConf := filepath.Join(dir, "bus.conf")
	avahiConf := filepath.Join(dir, "avahi.conf")
	os.WriteFile(busConf, []byte(fmt.Sprintf(busConfig, bus)), 0o644)
	os.WriteFile(avahiConf, []byte(fmt.Sprintf(avahiConfig, "avahi-"+filepath.Base(dir)[len("ddavahi-"):], nd.Interface)), 0o644)
	ctx := context.Background()

	dbus := nd.Command(ctx, "dbus-daemon", "--config-file="+busConf, "--nofork", "--nopidfile")
	dbus.Stderr = testWriter{t, "dbus-daemon"}
	netns.StartT(t, dbus)
	testenv.Eventually(t, time.Minute, func() bool { _, err := os.Stat(bus); return err == nil }, "the D-Bus socket did not appear")

	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)
	var out syncBuffer
	avahi := nd.Command(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$0"`, avahiConf)
	avahi.Env = env
	avahi.Stdout, avahi.Stderr = &out, &out
	netns.StartT(t, avahi)
	t.Cleanup(func() { t.Logf("avahi-daemon output:\n%s", out.String()) })
	testenv.Eventually(t, time.Minute, func() bool { return strings.Contains(out.String(), "Server startup complete") }, "avahi-daemon did not start")
	return env
}

func TestAvahiInterop(t *testing.T) {
	if err := netns.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	bin := commands(t)
	nw := netns.NewNetworkT(t, "dda", 2)
	av, us := nw.Nodes[0], nw.Nodes[1]
	env := startAvahi(t, av)
	ctx := context.Background()

	// 1. A record published by avahi-publish in the original format is read
	// by our browser into the expected target.
	var pubOut syncBuffer
	ap := av.Command(ctx, "avahi-publish", "-s", "disnix-avtest", "_disnix._tcp", "22",
		`properties."hostname"="avtest"`,
		`properties."mem"="377648"`,
		`properties."supportedTypes"=[ "process" "wrapper" ]`,
		`containers.mysql-database."mysqlPort"="3306"`)
	ap.Env = env
	ap.Stdout, ap.Stderr = &pubOut, &pubOut
	apExited := netns.StartT(t, ap)
	testenv.Eventually(t, time.Minute, func() bool { return strings.Contains(pubOut.String(), "Established") }, "avahi-publish did not establish its service")

	// 2. Our publisher, for avahi-browse.
	props := filepath.Join(t.TempDir(), "test1.json")
	writeJSON(t, props, map[string]any{"properties": map[string]any{"hostname": "test1", "mem": 1024, "supportedTypes": []any{"process", "wrapper"}}})
	pub := us.Command(ctx, bin+"/dydisnix-publishinfra", "--interface", us.Interface, "--properties", props)
	pub.Stderr = testWriter{t, "publisher"}
	netns.StartT(t, pub)

	gen, err := us.Command(ctx, bin+"/dydisnix-geninfra-mdns", "--interface", us.Interface, "-t", "2s", "--log-level", "error").Output()
	if err != nil {
		t.Fatalf("geninfra: %v", err)
	}
	v, err := model.DecodeValue(gen, model.FormatJSON, "geninfra output")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := model.InfrastructureFromValue(v, "geninfra output")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := model.TargetFromValue("avtest", map[string]any{
		"properties": map[string]any{"hostname": "avtest", "mem": "377648", "supportedTypes": []any{"process", "wrapper"}},
		"containers": map[string]any{"mysql-database": map[string]any{"mysqlPort": "3306"}},
	}, "want")
	if got := infra["avtest"]; got == nil || !discovery.TargetEqual(got, want) {
		data, _ := json.Marshal(infra)
		t.Fatalf("avahi-published target read as %s", data)
	}

	// Avahi's goodbye, when avahi-publish ends, removes the target.
	w := startWatcher(t, us.Command(ctx, bin+"/dydisnix-geninfra-mdns", "--watch", "--interface", us.Interface, "-t", "1s", "--browse-interval", "0.5s", "--log-level", "error"))
	w.wait(t, "avtest seen by the watcher", func(s discovery.Snapshot) bool { return s.Infrastructure["avtest"] != nil })
	ap.Process.Signal(os.Interrupt)
	<-apExited
	s := w.wait(t, "avtest removed", hasEvent(discovery.EventRemoved, "avtest"))
	for _, e := range s.Events {
		if e.Target == "avtest" && e.Reason != discovery.ReasonGoodbye {
			t.Errorf("avtest removed for %q, want goodbye", e.Reason)
		}
	}

	// 3. avahi-browse lists our record with the expected TXT.
	wantTXT := []string{
		`"txtvers=1"`,
		`"properties.\"hostname\"=\"test1\""`,
		`"properties.\"mem\"=1024"`,
		`"properties.\"supportedTypes\"=[ \"process\" \"wrapper\" ]"`,
		`"hash=\"sha256-`,
	}
	var line string
	testenv.Eventually(t, time.Minute, func() bool {
		cmd := av.Command(ctx, "avahi-browse", "-rpt", "_disnix._tcp")
		cmd.Env = env
		out, _ := cmd.Output()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "=;"+av.Interface+";IPv4;disnix-test1;_disnix._tcp;local;") {
				line = l
				return true
			}
		}
		return false
	}, "avahi-browse did not list disnix-test1")
	for _, w := range wantTXT {
		if !strings.Contains(line, w) {
			t.Errorf("avahi-browse line lacks %s:\n%s", w, line)
		}
	}
	if !strings.Contains(line, ";"+us.Addr+";22;") {
		t.Errorf("avahi-browse line lacks address %s and port 22:\n%s", us.Addr, line)
	}
}
