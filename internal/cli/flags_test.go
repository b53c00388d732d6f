package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStateDirPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		name, flag, env, want string
	}{
		{"flag wins", "/srv/st", "/env/st", "/srv/st"},
		{"environment", "", "/env/st", "/env/st"},
		{"home", "", "", filepath.Join(home, ".dydisnix")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(StateDirEnv, tc.env)
			c := New("x", "", "")
			var s StateDir
			s.AddFlags(c.Flags)
			args := []string{}
			if tc.flag != "" {
				args = []string{"--state-dir", tc.flag}
			}
			if code, done := c.Parse(args, &bytes.Buffer{}, &bytes.Buffer{}); done {
				t.Fatalf("parse: %d", code)
			}
			if got := s.Path(); got != tc.want {
				t.Errorf("Path() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAgentToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file, want, err string
		usage                 bool
	}{
		{"trimmed", write("tok", "  s3cret\n"), "s3cret", "", false},
		{"empty", write("empty", " \n"), "", "is empty", false},
		{"missing", filepath.Join(dir, "nope"), "", "token file: open", false},
		{"not given", "", "", "--agent-token-file is required", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Agent{TokenFile: tc.file}
			got, err := a.Token()
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Token() = %q, %v; want %q, %q", got, err, tc.want, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error shows the token: %v", err)
			}
			if usage := err != nil && Exit("x", err, &bytes.Buffer{}) == 2; usage != tc.usage {
				t.Errorf("usage error: %v, want %v", usage, tc.usage)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		check func(string) bool
	}{
		{"console info", nil, func(s string) bool {
			return strings.Contains(s, "INFO\tshown") && strings.Contains(s, "WARN\twarned") && !strings.Contains(s, "hidden")
		}},
		{"json warn", []string{"--log-format", "json", "--log-level", "warn"}, func(s string) bool {
			var e map[string]any
			return json.Unmarshal([]byte(s), &e) == nil && e["msg"] == "warned" && e["level"] == "warn"
		}},
		{"debug", []string{"--log-level", "debug"}, func(s string) bool { return strings.Contains(s, "DEBUG\thidden") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New("x", "", "")
			var l Log
			l.AddFlags(c.Flags)
			if code, done := c.Parse(tc.args, &bytes.Buffer{}, &bytes.Buffer{}); done {
				t.Fatalf("parse: %d", code)
			}
			var b bytes.Buffer
			log := l.Logger(&b)
			log.Debug("hidden")
			log.Info("shown")
			log.Warn("warned")
			if !tc.check(b.String()) {
				t.Errorf("log:\n%s", b.String())
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg  string
		want time.Duration
		ok   bool
	}{
		{"5", 5 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"250ms", 250 * time.Millisecond, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"-2s", 0, false},
		{"soon", 0, false},
		{"NaN", 0, false},
		{"1e300", 0, false},
	} {
		c := New("x", "", "")
		var d time.Duration
		SecondsVarP(c.Flags, &d, "timeout", "t", 2*time.Second, "")
		var errb bytes.Buffer
		code, done := c.Parse([]string{"-t", tc.arg}, &bytes.Buffer{}, &errb)
		if ok := !done; ok != tc.ok || (ok && d != tc.want) {
			t.Errorf("-t %s: %v (exit %d: %s), want %v ok=%v", tc.arg, d, code, errb.String(), tc.want, tc.ok)
		}
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		which int
		args  []string
		want  Models
	}{
		{"all", ServicesFlag | InfrastructureFlag | DistributionFlag | ExtraParamsFlag,
			[]string{"-s", "s.nix", "-i", "i.nix", "-d", "d.nix", "--extra-params", "{ x = 1; }"},
			Models{Services: "s.nix", Infrastructure: "i.nix", Distribution: "d.nix", ExtraParams: "{ x = 1; }"}},
		{"infrastructure only", InfrastructureFlag, []string{"--infrastructure", "i.json"}, Models{Infrastructure: "i.json"}},
	} {
		c := New("x", "", "")
		var m Models
		m.AddFlags(c.Flags, tc.which)
		if code, done := c.Parse(tc.args, &bytes.Buffer{}, &bytes.Buffer{}); done {
			t.Fatalf("%s: exit %d", tc.name, code)
		}
		if m != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, m, tc.want)
		}
	}
	for _, tc := range []struct {
		m     Models
		which int
		want  string
	}{
		{Models{Infrastructure: "i"}, ServicesFlag | InfrastructureFlag, "A services expression must be specified! (-s)"},
		{Models{Services: "s"}, ServicesFlag | InfrastructureFlag | DistributionFlag, "An infrastructure expression must be specified! (-i)"},
		{Models{Services: "s", Infrastructure: "i"}, ServicesFlag | InfrastructureFlag | DistributionFlag, "A distribution expression must be specified! (-d)"},
		{Models{Services: "s"}, ServicesFlag | ExtraParamsFlag, ""},
	} {
		err := tc.m.Require(tc.which)
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && (got != tc.want || !errors.Is(err, ErrUsage))) {
			t.Errorf("%+v.Require(%b) = %v, want %q", tc.m, tc.which, err, tc.want)
		}
	}
	c := New("x", "", "")
	var m Models
	m.AddFlags(c.Flags, InfrastructureFlag)
	if code, _ := c.Parse([]string{"-s", "s.json"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("-s without ServicesFlag: exit %d, want 2", code)
	}
}

func TestOutput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		args       []string
		format     string
		stdout     string
		wroteTo    string
		parseFails bool
	}{
		{"default", nil, "json", "doc", "", false},
		{"file", []string{"-o", "out.nix", "-f", "nix"}, "nix", "", "out.nix", false},
		{"bad format", []string{"--format", "xml"}, "", "", "", true},
	} {
		c := New("x", "", "")
		var o Output
		o.AddFlags(c.Flags, "the document", "json", "nix")
		if _, done := c.Parse(tc.args, &bytes.Buffer{}, &bytes.Buffer{}); done != tc.parseFails {
			t.Fatalf("%s: parse done=%v", tc.name, done)
		}
		if tc.parseFails {
			continue
		}
		var out bytes.Buffer
		wrote := ""
		err := o.Write([]byte("doc"), &out, func(file string, data []byte) error { wrote = file; return nil })
		if err != nil || o.Format != tc.format || out.String() != tc.stdout || wrote != tc.wroteTo {
			t.Errorf("%s: format %q, stdout %q, file %q, %v", tc.name, o.Format, out.String(), wrote, err)
		}
	}
}

// TestOutputCheck checks that an output file's name decides its format
// (issue 9: --output-file ids.nix held JSON).
func TestOutputCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		formats []string
		want    string
		usage   bool
	}{
		{"nix name", []string{"-o", "ids.nix"}, []string{"json", "nix"}, "nix", false},
		{"upper-case NIX name", []string{"-o", "D.NIX"}, []string{"json", "nix"}, "nix", false},
		{"json name keeps json", []string{"-o", "ids.json"}, []string{"nix", "json"}, "json", false},
		{"xml name", []string{"-o", "d.xml"}, []string{"json", "nix", "xml"}, "xml", false},
		{"xml name, no xml format", []string{"-o", "d.xml"}, []string{"json", "nix"}, "json", false},
		{"other name keeps -f", []string{"-o", "d.out", "-f", "nix"}, []string{"json", "nix"}, "nix", false},
		{"stdout keeps the default", nil, []string{"json", "nix"}, "json", false},
		{"-f agreeing with the name", []string{"-f", "nix", "-o", "x.nix"}, []string{"json", "nix"}, "nix", false},
		{"-f contradicting the name", []string{"-f", "json", "-o", "x.nix"}, []string{"json", "nix"}, "", true},
		{"nix name, no nix format", []string{"-o", "x.nix"}, []string{"text", "json"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New("x", "", "")
			var o Output
			o.AddFlags(c.Flags, "it", tc.formats...)
			if code, done := c.Parse(tc.args, &bytes.Buffer{}, &bytes.Buffer{}); done {
				t.Fatalf("parse: %d", code)
			}
			err := o.Check()
			if tc.usage {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("Check() = %v, want a usage error", err)
				}
				return
			}
			if err != nil || o.Format != tc.want {
				t.Errorf("Check() = %v, format %q; want nil, %q", err, o.Format, tc.want)
			}
		})
	}
}

// TestAgentRequire (issue 11): a coordinator reaches agents over mutual TLS
// unless told --insecure-http; without the fleet CA the usage error says
// how to create it.
func TestAgentRequire(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Agent
		want string
	}{
		{"no CA", Agent{TokenFile: "t"}, "dydisnix-tls ca create"},
		{"CA without certificate", Agent{TokenFile: "t", CAFile: "ca.pem"}, "--tls-cert"},
		{"certificate without key", Agent{TokenFile: "t", CAFile: "ca.pem", CertFile: "c.pem"}, "go together"},
		{"mutual TLS", Agent{TokenFile: "t", CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"}, ""},
		{"insecure", Agent{TokenFile: "t", InsecureHTTP: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.a.Require()
			if (err == nil) != (tc.want == "") || (err != nil && (!strings.Contains(err.Error(), tc.want) || Exit("x", err, &bytes.Buffer{}) != 2)) {
				t.Fatalf("Require() = %v, want a usage error with %q", err, tc.want)
			}
		})
	}
}
