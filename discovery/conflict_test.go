package discovery_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/discovery"
	"github.com/dydisnix/dydisnix/internal/netns"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

// impostorScenario is the network of the hostname-conflict tests: the
// genuine machine1 (dydisnix-publishinfra --serve) in one namespace, an
// attacker's laptop with avahi and a web server in another, the browser
// (dydisnix-geninfra-mdns --watch) in a third.
type impostorScenario struct {
	bin                 string
	genuine, attacker   *netns.Node
	browser             *netns.Node
	env                 []string // avahi clients' environment on attacker
	genuineURL, evilURL string
}

func newImpostorScenario(t *testing.T, prefix string) *impostorScenario {
	t.Helper()
	if err := netns.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	bin := commands(t)
	nw := netns.NewNetworkT(t, prefix, 3)
	s := &impostorScenario{bin: bin, genuine: nw.Nodes[0], attacker: nw.Nodes[1], browser: nw.Nodes[2]}
	s.env = startAvahi(t, s.attacker)
	// The attacker's endpoint answers HTTP, so liveness probes keep its
	// claim alive.
	web := s.attacker.Command(context.Background(), "python3", "-m", "http.server", "--bind", s.attacker.Addr, "18080")
	web.Dir = t.TempDir()
	web.Stderr = testWriter{t, "attacker web"}
	netns.StartT(t, web)
	s.genuineURL = "http://" + s.genuine.Addr + ":9001"
	s.evilURL = "http://" + s.attacker.Addr + ":18080"
	return s
}

// announce publishes the TXT strings txt as instance from the attacker's
// avahi.
func (s *impostorScenario) announce(t *testing.T, instance string, txt ...string) {
	t.Helper()
	var out syncBuffer
	ap := s.attacker.Command(context.Background(), "avahi-publish", append([]string{"-s", instance, "_disnix._tcp", "22"}, txt...)...)
	ap.Env = s.env
	ap.Stdout, ap.Stderr = &out, &out
	netns.StartT(t, ap)
	testenv.Eventually(t, time.Minute, func() bool { return strings.Contains(out.String(), "Established") }, "avahi-publish did not establish "+instance)
}

func agentURL(s discovery.Snapshot, name string) any {
	if t := s.Infrastructure[name]; t != nil {
		return t.Properties[discovery.AgentURLProperty]
	}
	return nil
}

func conflictOf(s discovery.Snapshot, hostname, ignored string) *discovery.Conflict {
	for _, c := range s.Conflicts {
		if c.Hostname == hostname && c.Ignored.Instance == ignored {
			return &c
		}
	}
	return nil
}

// TestImpostorDoesNotReplaceHostname covers the second half of finding 1
// of the trust review: a second announcer claiming hostname=machine1 with
// the attacker's endpoint replaced the real machine1's agentURL silently
// (its instance name sorted first). Now the first claim keeps the
// hostname and the second is reported as a conflict.
func TestImpostorDoesNotReplaceHostname(t *testing.T) {
	s := newImpostorScenario(t, "ddi")
	props := filepath.Join(t.TempDir(), "machine1.json")
	writeJSON(t, props, map[string]any{"properties": map[string]any{"hostname": "machine1", "mem": 1024}})
	startPublisher(t, s.genuine, s.bin, props, "--serve", "0.0.0.0:9001")
	w := startWatcher(t, s.browser.Command(context.Background(), s.bin+"/dydisnix-geninfra-mdns", "--watch", "--interface", s.browser.Interface,
		"--browse-interval", "0.5s", "--debounce", "100ms", "-t", "1s"))
	w.wait(t, "the genuine machine1", func(sn discovery.Snapshot) bool { return agentURL(sn, "machine1") == s.genuineURL })

	// disnix-0evil sorts before disnix-machine1.
	s.announce(t, "disnix-0evil", "txtvers=1", `properties."hostname"="machine1"`, `properties."mem"="1"`, `endpoint="`+s.evilURL+`"`)
	sn := w.wait(t, "the conflict", func(sn discovery.Snapshot) bool {
		if url := agentURL(sn, "machine1"); url != s.genuineURL {
			t.Fatalf("machine1's agentURL became %v, want %s", url, s.genuineURL)
		}
		return conflictOf(sn, "machine1", "disnix-0evil") != nil
	})
	c := conflictOf(sn.Snapshot, "machine1", "disnix-0evil")
	if c.Kept.Instance != "disnix-machine1" || c.Kept.Endpoint != s.genuineURL || c.Ignored.Endpoint != s.evilURL {
		t.Fatalf("conflict %+v", c)
	}
	if !hasEvent(discovery.EventConflict, "machine1")(sn.Snapshot) {
		t.Errorf("no conflict event in %+v", sn.Events)
	}
}

// TestVerifyKeyRejectsStrangers: with a verify key, an unsigned stranger
// announcing a new hostname is not a target, and an impostor of machine1
// signed with another key loses to the genuine, signed machine1 (reported
// as a conflict, never its endpoint).
func TestVerifyKeyRejectsStrangers(t *testing.T) {
	s := newImpostorScenario(t, "ddv")
	dir := t.TempDir()
	key, wrong := filepath.Join(dir, "fleet.key"), filepath.Join(dir, "wrong.key")
	if err := os.WriteFile(key, []byte("the fleet's announcement secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	props := filepath.Join(dir, "machine1.json")
	writeJSON(t, props, map[string]any{"properties": map[string]any{"hostname": "machine1", "mem": 1024}})
	startPublisher(t, s.genuine, s.bin, props, "--serve", "0.0.0.0:9001", "--sign-key", key)
	w := startWatcher(t, s.browser.Command(context.Background(), s.bin+"/dydisnix-geninfra-mdns", "--watch", "--interface", s.browser.Interface,
		"--browse-interval", "0.5s", "--debounce", "100ms", "-t", "1s", "--verify-key", key))
	w.wait(t, "the signed machine1", func(sn discovery.Snapshot) bool { return agentURL(sn, "machine1") == s.genuineURL })

	s.announce(t, "disnix-zzz", "txtvers=1", `properties."hostname"="zzz"`, `endpoint="`+s.evilURL+`"`)
	if err := os.WriteFile(wrong, []byte("a key the attacker made up\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	forger, err := discovery.LoadKey(wrong)
	if err != nil {
		t.Fatal(err)
	}
	txt, _, err := discovery.EncodeTXT(target(t, "machine1", map[string]any{"hostname": "machine1", "mem": 1}),
		discovery.EncodeOptions{Endpoint: s.evilURL, Signer: forger})
	if err != nil {
		t.Fatal(err)
	}
	s.announce(t, "disnix-0evil", txt...)
	sn := w.wait(t, "the forged claim reported", func(sn discovery.Snapshot) bool {
		if url := agentURL(sn, "machine1"); url != s.genuineURL {
			t.Fatalf("machine1's agentURL became %v, want %s", url, s.genuineURL)
		}
		if sn.Infrastructure["zzz"] != nil {
			t.Fatal("the unsigned stranger zzz became a target")
		}
		return conflictOf(sn, "machine1", "disnix-0evil") != nil
	})
	if c := conflictOf(sn.Snapshot, "machine1", "disnix-0evil"); !strings.Contains(c.Reason, "not signed with the verify key") || c.Ignored.Endpoint != s.evilURL {
		t.Fatalf("conflict %+v", c)
	}
}
