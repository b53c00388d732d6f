package dist_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// unitFile is a systemd unit: section → key → values (a key set twice has
// two values; continuation lines are joined).
type unitFile map[string]map[string][]string

// readUnit parses a unit file.
func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	cont := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line, cont = cont+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not KEY=VALUE inside a section", path, n, line)
			}
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the single value of a key.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s has values %q, want exactly one", section, key, v)
	}
	return v[0]
}

// words are the white-space separated words of every value of a key.
func (u unitFile) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func contains(list []string, want string) bool {
	for _, v := range list {
		if v == want {
			return true
		}
	}
	return false
}

// units are the unit files shipped in dist/systemd, by file name.
func units(t *testing.T) map[string]unitFile {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("systemd", "*.service"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit files in dist/systemd (%v)", err)
	}
	out := map[string]unitFile{}
	for _, f := range files {
		out[filepath.Base(f)] = readUnit(t, f)
	}
	return out
}

func stopTimeout(t *testing.T, u unitFile) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec") + "s")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// flagDuration is the value of a duration flag of ExecStart.
func flagDuration(t *testing.T, exec, flag string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(flag) + `[ =](\S+)`).FindStringSubmatch(exec)
	if m == nil {
		t.Fatalf("ExecStart lacks %s", flag)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUnitFiles checks the settings the units' comments promise: ordering
// after the network, drains that are not cut short by systemd, the token
// passed as a credential, the publisher's goodbye before the agent's drain.
func TestUnitFiles(t *testing.T) {
	t.Parallel()
	all := units(t)
	sa, ag, pub := all["dydisnix-self-adapt.service"], all["dydisnix-agent.service"], all["dydisnix-publishinfra.service"]
	if sa == nil || ag == nil || pub == nil {
		t.Fatalf("dist/systemd lacks one of the three units: %v", all)
	}
	for name, u := range all {
		if !contains(u.words("Unit", "After"), "network-online.target") || !contains(u.words("Unit", "Wants"), "network-online.target") {
			t.Errorf("%s: not ordered after network-online.target", name)
		}
		if u.one(t, "Service", "KillMode") != "mixed" {
			t.Errorf("%s: KillMode = %v, want mixed", name, u["Service"]["KillMode"])
		}
		if !contains(u.words("Install", "WantedBy"), "multi-user.target") {
			t.Errorf("%s: not wanted by multi-user.target", name)
		}
	}
	for name, u := range all {
		if f := u.one(t, "Service", "EnvironmentFile"); !strings.HasPrefix(f, "-") {
			t.Errorf("%s: EnvironmentFile=%s must be optional (-/etc/default/...)", name, f)
		}
	}
	if sa.one(t, "Service", "WatchdogSec") == "" || sa.one(t, "Service", "User") != "dydisnix" {
		t.Errorf("self-adapt: want WatchdogSec= and User=dydisnix (the sysusers.d user)")
	}
	if sa.one(t, "Service", "Type") != "notify" || ag.one(t, "Service", "Type") != "notify" {
		t.Errorf("self-adapt and agent must be Type=notify")
	}
	saExec, agExec := sa.one(t, "Service", "ExecStart"), ag.one(t, "Service", "ExecStart")
	if got, max := stopTimeout(t, sa), flagDuration(t, saExec, "--shutdown-timeout"); got <= max {
		t.Errorf("self-adapt: TimeoutStopSec %v must exceed --shutdown-timeout %v", got, max)
	}
	if got, drain := stopTimeout(t, ag), flagDuration(t, agExec, "--drain-timeout"); got <= drain+10*time.Second {
		t.Errorf("agent: TimeoutStopSec %v must exceed --drain-timeout %v plus the processes' stop time", got, drain)
	}
	if !contains(pub.words("Unit", "After"), "dydisnix-agent.service") || !contains(ag.words("Unit", "Before"), "dydisnix-publishinfra.service") {
		t.Errorf("the publisher must stop (goodbye) before the agent drains")
	}
	for _, f := range []string{"--agent-token-file", "--state-dir", "--status-listen", "--log-format"} {
		if !strings.Contains(saExec, f) {
			t.Errorf("self-adapt ExecStart lacks %s", f)
		}
	}
	for name, exec := range map[string]string{"self-adapt": saExec, "agent": agExec} {
		if !strings.Contains(exec, "token-file ${CREDENTIALS_DIRECTORY}/"+credentialName) {
			t.Errorf("%s: the agent token must come from the credential %q: %s", name, credentialName, exec)
		}
	}
}

// execStart returns a unit's ExecStart as words, the environment variables
// of its EnvironmentFile replaced by env ($VAR split at white space, ${VAR}
// one word, as systemd does).
func execStart(t *testing.T, u unitFile, env map[string]string) []string {
	t.Helper()
	var out []string
	for _, w := range strings.Fields(u.one(t, "Service", "ExecStart")) {
		if name, ok := strings.CutPrefix(w, "$"); ok && !strings.HasPrefix(name, "{") {
			out = append(out, strings.Fields(env[name])...)
			continue
		}
		w = os.Expand(w, func(name string) string {
			if v, ok := env[name]; ok {
				return v
			}
			return "${" + name + "}" // set by systemd itself (STATE_DIRECTORY, ...)
		})
		out = append(out, w)
	}
	return out
}

// TestUnitFlagsInHelp checks every flag of every unit's ExecStart against
// the options its command lists in --help (a flag renamed in a command
// leaves the unit failing at start), then runs the command's own flag
// parser over the same arguments.
func TestUnitFlagsInHelp(t *testing.T) {
	t.Parallel()
	bin := installed(t).bin
	for name, u := range units(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := execStart(t, u, unitEnv[name])
			command := filepath.Base(args[0])
			if want := strings.TrimSuffix(name, ".service"); command != want {
				t.Errorf("%s runs %s, want %s", name, command, want)
			}
			known := helpFlags(t, filepath.Join(bin, command))
			for i, a := range args[1:] {
				if !strings.HasPrefix(a, "-") {
					continue
				}
				flag, _, _ := strings.Cut(a, "=")
				if _, ok := known[flag]; !ok {
					t.Errorf("ExecStart argument %d %q: %s --help has no such flag", i+1, a, command)
				}
			}
			// The real parser: unknown flags and missing values are usage
			// errors (exit 2) before --help is reached.
			code, out := run(t, filepath.Join(bin, command), append(args[1:], "--help")...)
			if code != 0 {
				t.Errorf("%s %s --help: exit %d, want 0 (the flags parse):\n%s", command, strings.Join(args[1:], " "), code, out)
			}
		})
	}
}

// helpFlag matches a flag in the options list of --help.
var helpFlag = regexp.MustCompile(`^(?:  -([^-\s]), |      )--([A-Za-z0-9][-A-Za-z0-9]*)`)

// helpFlags are the flags ("-s", "--services") the command's --help lists.
func helpFlags(t *testing.T, prog string) map[string]bool {
	t.Helper()
	code, out := run(t, prog, "--help")
	if code != 0 {
		t.Fatalf("%s --help: exit %d\n%s", prog, code, out)
	}
	flags := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if m := helpFlag.FindStringSubmatch(l); m != nil {
			if m[1] != "" {
				flags["-"+m[1]] = true
			}
			flags["--"+m[2]] = true
		}
	}
	if len(flags) < 3 {
		t.Fatalf("%s --help lists %d flags: %v", prog, len(flags), flags)
	}
	return flags
}

// unitEnv are example settings of /etc/default/<unit> (as the units'
// comments describe them); the NixOS module is compared with the units
// under the same settings.
var unitEnv = map[string]map[string]string{
	"dydisnix-agent.service": {"LISTEN": "0.0.0.0:7420", "INTERFACE": "eth0", "EXTRA_ARGS": "--log-level debug"},
	"dydisnix-self-adapt.service": {
		"SERVICES": "/etc/dydisnix/services.nix", "QOS": "builtin:by-type-round-robin", "INTERFACE": "eth0",
		"EXTRA_ARGS": "--augment /etc/dydisnix/augment.yaml --ports /var/lib/dydisnix/ports.json",
	},
	"dydisnix-publishinfra.service": {"INTERFACE": "eth0", "EXTRA_ARGS": "--endpoint http://192.0.2.10:7420"},
}
