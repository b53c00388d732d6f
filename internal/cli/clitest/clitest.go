// Package clitest holds what the tests of the dydisnix commands share:
// writing model files, calling a command's run function, and checking a
// table of invocations against exit statuses and output.
package clitest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RunFunc is a command's testable main: it parses args, writes to stdout
// and stderr, and returns the exit status.
type RunFunc func(args []string, stdout, stderr io.Writer) int

// WriteFile writes content to dir/name and returns its path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Run calls run with args and returns the exit status, stdout and stderr.
func Run(run RunFunc, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Case is one invocation of a command and what it must give: the exit
// status, and text that stdout and stderr must contain.
type Case struct {
	Name   string
	Args   []string
	Code   int
	Stdout string
	Stderr string
}

// C is a Case, for tables of cases written without field names.
func C(name string, args []string, code int, stdout, stderr string) Case {
	return Case{Name: name, Args: args, Code: code, Stdout: stdout, Stderr: stderr}
}

// RunCases runs every case as a parallel subtest of t; each of checks
// then looks at every case's output as well.
func RunCases(t *testing.T, run RunFunc, cases []Case, checks ...func(t *testing.T, stdout, stderr string)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := Run(run, tc.Args...)
			if code != tc.Code || !strings.Contains(out, tc.Stdout) || !strings.Contains(errs, tc.Stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout containing %q and stderr containing %q",
					code, tc.Code, out, errs, tc.Stdout, tc.Stderr)
			}
			for _, check := range checks {
				check(t, out, errs)
			}
		})
	}
}
