package adapt

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// unit reads a systemd unit file into key → values (continuation lines joined).
func unit(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "dist", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	var cont string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line = cont + " " + line
			cont = ""
		}
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\")
			continue
		}
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", name, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func has(vals []string, want string) bool {
	for _, v := range vals {
		for _, f := range strings.Fields(v) {
			if f == want {
				return true
			}
		}
	}
	return false
}

func stopTimeout(t *testing.T, u map[string][]string) time.Duration {
	t.Helper()
	v := u["TimeoutStopSec"]
	if len(v) != 1 {
		t.Fatalf("TimeoutStopSec = %v", v)
	}
	d, err := time.ParseDuration(v[0] + "s")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func flagDuration(t *testing.T, exec, flag string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(flag) + `[ =](\S+)`).FindStringSubmatch(exec)
	if m == nil {
		t.Fatalf("ExecStart lacks %s", flag)
	}
	d, err := time.ParseDuration(strings.Replace(m[1], "min", "m", 1))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestUnitFiles(t *testing.T) {
	t.Parallel()
	sa := unit(t, "dydisnix-self-adapt.service")
	ag := unit(t, "dydisnix-agent.service")
	pub := unit(t, "dydisnix-publishinfra.service")
	for name, u := range map[string]map[string][]string{"self-adapt": sa, "agent": ag, "publisher": pub} {
		if !has(u["After"], "network-online.target") || !has(u["Wants"], "network-online.target") {
			t.Errorf("%s: not ordered after network-online.target", name)
		}
		if !has(u["KillMode"], "mixed") {
			t.Errorf("%s: KillMode = %v, want mixed", name, u["KillMode"])
		}
	}
	if !has(sa["Type"], "notify") || !has(ag["Type"], "notify") {
		t.Errorf("self-adapt and agent must be Type=notify")
	}
	if got, max := stopTimeout(t, sa), flagDuration(t, sa["ExecStart"][0], "--shutdown-timeout"); got <= max {
		t.Errorf("self-adapt: TimeoutStopSec %v must exceed --shutdown-timeout %v", got, max)
	}
	if got, drain := stopTimeout(t, ag), flagDuration(t, ag["ExecStart"][0], "--drain-timeout"); got <= drain+10*time.Second {
		t.Errorf("agent: TimeoutStopSec %v must exceed --drain-timeout %v plus the processes' stop time", got, drain)
	}
	if !has(pub["After"], "dydisnix-agent.service") || !has(ag["Before"], "dydisnix-publishinfra.service") {
		t.Errorf("the publisher must stop (goodbye) before the agent drains")
	}
	for _, f := range []string{"--agent-token-file", "--state-dir", "--status-listen", "--log-format"} {
		if !strings.Contains(sa["ExecStart"][0], f) {
			t.Errorf("self-adapt ExecStart lacks %s", f)
		}
	}
	for _, x := range []string{sa["ExecStart"][0], ag["ExecStart"][0]} {
		if !strings.Contains(x, "token-file ${CREDENTIALS_DIRECTORY}/agent-token") {
			t.Errorf("the agent token must come from a credential file: %s", x)
		}
	}
}

// TestUnitFilesVerify runs systemd-analyze verify when it is installed
// (only missing binaries may be reported).
func TestUnitFilesVerify(t *testing.T) {
	t.Parallel()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; TestUnitFiles checked the settings")
	}
	files, _ := filepath.Glob(filepath.Join("..", "dist", "systemd", "*.service"))
	out, _ := exec.Command(sa, append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "is not executable") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}
