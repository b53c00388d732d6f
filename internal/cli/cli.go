// Package cli holds what the thin main packages of the dydisnix commands
// share: usage errors and the mapping of errors to exit statuses.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUsage marks an error in how a command was called: it exits with
// status 2.
var ErrUsage = errors.New("usage error")

// Usagef returns a usage error (it wraps ErrUsage).
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// Exit reports err on stderr, prefixed by the command's name, and returns the
// contract's exit status: 0 without an error, 2 for a usage error (with a
// pointer to --help), 1 for any other error (a model or planning error).
func Exit(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\nTry '%s --help' for more information.\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// Warn reports the problems in err (one per line, as errors.Join writes
// them) as warnings on stderr; a nil err prints nothing. The planning
// commands warn about an invalid services model (an unknown dependency, a
// dependsOn cycle) where the original tools said nothing, and still plan.
func Warn(name string, err error, stderr io.Writer) {
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintf(stderr, "%s: warning: %s\n", name, line)
		}
	}
}
