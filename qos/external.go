package qos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

// The external step runs a user's command as a filter, the way the
// original ran its C filters: the command gets
//
//	{"services": ..., "infrastructure": ..., "distribution": ..., "previousDistribution": ... | null}
//
// as JSON on stdin and prints the new candidate distribution as JSON
// ({"svc": ["t1", ...]}, records as {"target", "container"}) on stdout.
// A non-zero exit, a timeout or a malformed answer is an error that names
// the command and shows its stderr.

// externalSpec is not Pure: the command may have side effects and need
// not answer the same twice, so a failed run is never repeated to explain it.
var externalSpec = Spec{Name: "external", Params: []string{"command", "timeout"}, New: newExternal,
	Doc: "pipe the models as JSON to a command and read the distribution it prints"}

// DefaultExternalTimeout bounds an external filter's run unless the step
// sets timeout.
const DefaultExternalTimeout = 60 * time.Second

// maxExternalOutput bounds what is read from an external filter's stdout.
const maxExternalOutput = 512 << 20

// External is the external filter.
type External struct {
	// Argv is the command and its arguments; a policy's string command is
	// run as ["/bin/sh", "-c", command].
	Argv    []string
	Timeout time.Duration
}

func newExternal(p Params) (Filter, error) {
	var argv []string
	switch v := p["command"].(type) {
	case nil:
		return nil, fmt.Errorf("parameter command is required (a shell command string, or a list [program, arg, ...])")
	case string:
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("parameter command: empty command")
		}
		argv = []string{"/bin/sh", "-c", v}
	default:
		l, _, err := p.Strs("command")
		if err != nil {
			return nil, err
		}
		if len(l) == 0 || l[0] == "" {
			return nil, fmt.Errorf("parameter command: empty command")
		}
		argv = l
	}
	timeout, err := p.Duration("timeout", DefaultExternalTimeout)
	if err != nil {
		return nil, err
	}
	return &External{Argv: argv, Timeout: timeout}, nil
}

func (x *External) name() string {
	if len(x.Argv) == 3 && x.Argv[0] == "/bin/sh" && x.Argv[1] == "-c" {
		return fmt.Sprintf("%q", x.Argv[2])
	}
	return fmt.Sprintf("%q", strings.Join(x.Argv, " "))
}

// Apply runs the command.
func (x *External) Apply(env *Env, in *Candidates) (*Candidates, error) {
	var prev any
	if env.Previous != nil {
		prev = env.Previous
	}
	input, err := json.Marshal(map[string]any{
		"services":             env.Services,
		"infrastructure":       env.Infrastructure,
		"distribution":         in.Distribution(),
		"previousDistribution": prev,
	})
	if err != nil {
		return nil, fmt.Errorf("external command %s: encode its input: %w", x.name(), err)
	}
	timeout := x.Timeout
	if timeout <= 0 {
		timeout = DefaultExternalTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.Argv[0], x.Argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// kill the whole process group: a shell's children too
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	cmd.Stdin = bytes.NewReader(input)
	var stdout limitedBuffer
	stdout.max = maxExternalOutput
	var stderr limitedBuffer
	stderr.max = 64 << 10
	stderr.keepTail = true
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("external command %s timed out after %s%s", x.name(), timeout, stderrText(&stderr))
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("external command %s failed (%v)%s", x.name(), ee.ProcessState, stderrText(&stderr))
		}
		return nil, fmt.Errorf("external command %s: %w", x.name(), err)
	}
	if stdout.overflow {
		return nil, fmt.Errorf("external command %s printed more than %d bytes", x.name(), maxExternalOutput)
	}
	v, err := model.DecodeValue(stdout.Bytes(), model.FormatJSON, "output of external command "+x.name())
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, stderrText(&stderr))
	}
	d, err := model.DistributionFromValue(v, "output of external command "+x.name())
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, s := range in.Services {
		names[s] = true
	}
	for s := range d {
		if !names[s] && env.Services[s] == nil {
			return nil, fmt.Errorf("external command %s returned service %s, which is neither in its input distribution nor in the services model", x.name(), s)
		}
		names[s] = true
	}
	all := make([]string, 0, len(names))
	for s := range names {
		all = append(all, s)
	}
	out := NewCandidates(in.Strings, all)
	for i, s := range out.Services {
		ms := d[s]
		list := make([]Cand, len(ms))
		for k, m := range ms {
			list[k] = out.Cand(m)
		}
		out.Lists[i] = list
		if _, ok := d[s]; !ok && env.Explains(s) {
			env.Note(s, "the external command returned no entry for this service")
		}
	}
	return out, nil
}

func stderrText(b *limitedBuffer) string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	if b.overflow {
		s = "..." + s
	}
	return "; its stderr:\n" + s
}

// limitedBuffer keeps at most max bytes: the head, or with keepTail the tail.
type limitedBuffer struct {
	bytes.Buffer
	max      int
	keepTail bool
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if b.Len()+len(p) > b.max {
		b.overflow = true
		if !b.keepTail {
			room := b.max - b.Len()
			if room > 0 {
				b.Buffer.Write(p[:room])
			}
			return n, nil
		}
		all := append(b.Bytes(), p...)
		if len(all) > b.max {
			all = all[len(all)-b.max:]
		}
		tail := append([]byte(nil), all...)
		b.Reset()
		b.Buffer.Write(tail)
		return n, nil
	}
	b.Buffer.Write(p)
	return n, nil
}
