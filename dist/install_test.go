package dist_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Where `make install` puts things, relative to PREFIX.
const (
	unitDir = "lib/systemd/system"
	manDir  = "share/man/man1"
	bashDir = "share/bash-completion/completions"
	zshDir  = "share/zsh/site-functions"
	fishDir = "share/fish/vendor_completions.d"
)

// installedFiles are the files one command installs, relative to PREFIX.
func installedFiles(command string) []string {
	return []string{
		"bin/" + command,
		manDir + "/" + command + ".1",
		bashDir + "/" + command,
		zshDir + "/_" + command,
		fishDir + "/" + command + ".fish",
	}
}

// TestInstall checks `make install PREFIX=DIR`: every command with its man
// page and completions, and the units with ExecStart in DIR/bin.
func TestInstall(t *testing.T) {
	t.Parallel()
	inst := installed(t)
	checkInstall(t, inst.prefix, inst.prefix)
}

// TestInstallDestdir checks a staged install: DESTDIR prefixes every file,
// and the units name PREFIX/bin, where the files will be at run time.
func TestInstallDestdir(t *testing.T) {
	t.Parallel()
	installed(t) // first, so the two builds share go's cache
	stage := filepath.Join(tmpRoot, "stage")
	// A BIN of its own: `go build -o` rewrites the binaries in place, which
	// the other tests run meanwhile.
	if err := makeInstall("DESTDIR="+stage, "PREFIX=/opt/dydisnix", "BIN="+filepath.Join(tmpRoot, "bin-stage")); err != nil {
		t.Fatal(err)
	}
	checkInstall(t, filepath.Join(stage, "opt", "dydisnix"), "/opt/dydisnix")
}

// checkInstall checks the files under root, installed for prefix.
func checkInstall(t *testing.T, root, prefix string) {
	t.Helper()
	for _, c := range commands(t) {
		for _, f := range installedFiles(c) {
			fi, err := os.Stat(filepath.Join(root, f))
			if err != nil {
				t.Errorf("%s not installed: %v", f, err)
				continue
			}
			if strings.HasPrefix(f, "bin/") && fi.Mode()&0o111 == 0 {
				t.Errorf("%s is not executable (%v)", f, fi.Mode())
			}
		}
	}
	for name := range units(t) {
		u := readUnit(t, filepath.Join(root, unitDir, name))
		exec := u.one(t, "Service", "ExecStart")
		want := filepath.Join(prefix, "bin", strings.TrimSuffix(name, ".service")) + " "
		if !strings.HasPrefix(exec, want) {
			t.Errorf("installed %s: ExecStart=%s, want it to start with %q", name, exec, want)
		}
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on the installed
// units (whose ExecStart binaries exist under the test's PREFIX): an error
// fails, and so does a warning (an unknown or misspelt setting is only a
// warning for systemd, which then ignores the line).
func TestSystemdAnalyzeVerify(t *testing.T) {
	t.Parallel()
	sa := requireTool(t, "systemd-analyze")
	inst := installed(t)
	files, err := filepath.Glob(filepath.Join(inst.prefix, unitDir, "*.service"))
	if err != nil || len(files) != len(units(t)) {
		t.Fatalf("installed units %v (%v), want %d", files, err, len(units(t)))
	}
	out, err := exec.Command(sa, append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(files, " "), err, out)
	}
}

// TestSystemdAnalyzeSecurity scores the installed units with
// `systemd-analyze security --offline`: the coordinator and the publisher
// must stay at most 4.0 ("OK"); the agent, which starts services as root,
// at most the score its unit's comment and docs/security.md record.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	t.Parallel()
	sa := requireTool(t, "systemd-analyze")
	inst := installed(t)
	for unit, max := range map[string]float64{
		"dydisnix-self-adapt.service":   4.0,
		"dydisnix-publishinfra.service": 4.0,
		"dydisnix-agent.service":        5.1,
	} {
		t.Run(unit, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(inst.prefix, unitDir, unit)
			cmd := exec.Command(sa, "security", "--offline=true", "--no-pager", file)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", file, err, out)
			}
			score, _ := strconv.ParseFloat(string(m[1]), 64)
			if score > max {
				t.Errorf("%s: exposure %.1f, want at most %.1f", unit, score, max)
			}
		})
	}
}

// TestSysusers creates the installed sysusers.d user in an empty root with
// systemd-sysusers: it is the user the coordinator's unit runs as.
func TestSysusers(t *testing.T) {
	t.Parallel()
	su := requireTool(t, "systemd-sysusers")
	inst := installed(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(inst.prefix, "lib/sysusers.d/dydisnix.conf")
	if out, err := exec.Command(su, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers %s: %v\n%s", conf, err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^dydisnix:x:\d+:\d+:dydisnix coordinator:/var/lib/dydisnix:`).Match(passwd) {
		t.Errorf("no dydisnix user in %s:\n%s", conf, passwd)
	}
}

// TestManPages formats every installed man page with groff's warnings on:
// none may be reported, and each page documents every flag of its command.
func TestManPages(t *testing.T) {
	t.Parallel()
	groff := requireTool(t, "groff")
	inst := installed(t)
	for _, c := range commands(t) {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			page := filepath.Join(inst.prefix, manDir, c+".1")
			cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", page)
			cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			text, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("groff %s: %v\n%s", page, err, stderr.String())
			}
			plain := strings.NewReplacer("\u2010", "-", "\u2212", "-").Replace(stripOverstrike(string(text)))
			for flag := range helpFlags(t, filepath.Join(inst.bin, c)) {
				if !strings.Contains(plain, flag) {
					t.Errorf("%s.1 does not document %s", c, flag)
				}
			}
			for _, section := range []string{"NAME", "SYNOPSIS", "OPTIONS"} {
				if !strings.Contains(plain, "\n"+section+"\n") {
					t.Errorf("%s.1 lacks the %s section", c, section)
				}
			}
		})
	}
}

// stripOverstrike removes the backspace sequences of bold and underlined
// text in groff's terminal output.
func stripOverstrike(s string) string {
	r := []rune(s)
	out := make([]rune, 0, len(r))
	for _, c := range r {
		if c == '\b' {
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

// completionCases are what each shell must offer: the flags of a command
// from a prefix, and the testbed's subcommands.
var completionCases = []struct {
	name  string
	words []string // the command line, the last word being completed
	want  []string
	none  []string // must not be offered
}{
	{"agent flags", []string{"dydisnix-agent", "--li"}, []string{"--listen"}, []string{"--log-format"}},
	{"agent interface flag", []string{"dydisnix-agent", "--int"}, []string{"--interface"}, nil},
	{"self-adapt mdns", []string{"dydisnix-self-adapt", "--mdns"}, []string{"--mdns-interface"}, nil},
	{"self-adapt short", []string{"dydisnix-self-adapt", "-"}, []string{"-s", "--services", "-q", "--qos", "--agent-token-file"}, nil},
	{"testbed subcommand", []string{"dydisnix-testbed", "cr"}, []string{"crash"}, []string{"up"}},
}

// TestCompletionsBash runs each command's bash completion function the way
// bash calls it (COMP_WORDS, COMP_CWORD) and reads COMPREPLY.
func TestCompletionsBash(t *testing.T) {
	t.Parallel()
	bash := requireTool(t, "bash")
	dir := filepath.Join(installed(t).prefix, bashDir)
	for _, tc := range completionCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := `source "$1/$2"; COMP_WORDS=("${@:2}"); COMP_CWORD=$(($# - 2)); ` +
				`fn=$(complete -p "$2" | sed -n 's/.* -F \([^ ]*\) .*/\1/p'); "$fn"; printf '%s\n' "${COMPREPLY[@]}"`
			out, err := exec.Command(bash, append([]string{"--norc", "-c", script, "bash", dir}, tc.words...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			checkOffered(t, strings.Fields(string(out)), tc.want, tc.none)
		})
	}
}

// TestCompletionsFish asks fish itself (`complete -C`) what it completes
// after loading each command's completions.
func TestCompletionsFish(t *testing.T) {
	t.Parallel()
	fish := requireTool(t, "fish")
	dir := filepath.Join(installed(t).prefix, fishDir)
	for _, tc := range completionCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := `source $argv[1]/$argv[2].fish; complete -C (string join -- ' ' $argv[2..-1])`
			out, err := exec.Command(fish, append([]string{"--no-config", "-c", script, dir}, tc.words...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("fish: %v\n%s", err, out)
			}
			var offered []string
			for _, l := range strings.Split(string(out), "\n") {
				if w, _, _ := strings.Cut(l, "\t"); w != "" {
					offered = append(offered, w)
				}
			}
			checkOffered(t, offered, tc.want, tc.none)
		})
	}
}

// TestCompletionsZsh loads each zsh completion function with zsh's parser
// and a stand-in _arguments that prints its specs: every flag of the
// command must arrive as one spec, with its description intact.
func TestCompletionsZsh(t *testing.T) {
	t.Parallel()
	zsh := requireTool(t, "zsh")
	inst := installed(t)
	for _, c := range commands(t) {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(inst.prefix, zshDir, "_"+c)
			head, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(string(head), "\n"); first != "#compdef "+c {
				t.Errorf("%s starts with %q, want #compdef %s", file, first, c)
			}
			script := `_arguments() { print -rl -- "$@" }; source "$1"`
			out, err := exec.Command(zsh, "-f", "-c", script, "zsh", file).CombinedOutput()
			if err != nil {
				t.Fatalf("zsh: %v\n%s", err, out)
			}
			specs := strings.Split(strings.TrimSpace(string(out)), "\n")
			for flag := range helpFlags(t, filepath.Join(inst.bin, c)) {
				found := false
				for _, s := range specs {
					// "(-s --services)-s[...]", "*--interface[...]", "--json[...]"
					if _, rest, ok := strings.Cut(s, ")"); ok && strings.HasPrefix(s, "(") {
						s = rest
					}
					s = strings.TrimPrefix(s, "*")
					if strings.HasPrefix(s, flag+"[") && strings.Contains(s, "]") {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: no _arguments spec for %s in\n%s", c, flag, out)
				}
			}
		})
	}
}

// TestCompletionsZshCompsys completes in a real interactive zsh, on a
// pseudo-terminal, with compinit loading the installed functions: the
// result is what a user sees after TAB (the completed line or the list).
func TestCompletionsZshCompsys(t *testing.T) {
	t.Parallel()
	zsh := requireTool(t, "zsh")
	dir := filepath.Join(installed(t).prefix, zshDir)
	script, err := filepath.Abs(filepath.Join("testdata", "zsh-complete.zsh"))
	if err != nil {
		t.Fatal(err)
	}
	escape := regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	for _, tc := range completionCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The deadline only keeps a broken zsh from hanging the test.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, zsh, "-f", script, dir, strings.Join(tc.words, " "))
			cmd.Dir = t.TempDir() // no file of the repository is a match
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("zsh: %v\n%q", err, out)
			}
			screen := stripOverstrike(escape.ReplaceAllString(string(out), ""))
			checkOffered(t, strings.Fields(screen), tc.want, nil)
		})
	}
}

func checkOffered(t *testing.T, offered, want, none []string) {
	t.Helper()
	for _, w := range want {
		if !contains(offered, w) {
			t.Errorf("%q not offered; offered %q", w, offered)
		}
	}
	for _, w := range none {
		if contains(offered, w) {
			t.Errorf("%q offered, want it left out; offered %q", w, offered)
		}
	}
}
