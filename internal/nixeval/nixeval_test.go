package nixeval

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/nixeval/nixevaltest"
	"github.com/dydisnix/dydisnix/internal/testenv"
)

func TestRun(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, Command)
	tests := []struct {
		name    string
		args    []string
		stdin   []byte
		want    string
		wantErr string // substring of an *Error's message
	}{
		{name: "value", args: []string{"--eval", "--strict", "--json", "--expr", "{ a = 1 + 1; }"}, want: `{"a":2}`},
		{name: "stdin", args: []string{"--eval", "--strict", "--json", "--expr", `builtins.fromJSON (builtins.readFile "/dev/stdin")`},
			stdin: []byte(`[1,"x"]`), want: `[1,"x"]`},
		{name: "error", args: []string{"--eval", "--expr", `throw "boom"`}, wantErr: "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := Run(context.Background(), Command, tc.args, tc.stdin)
			if tc.wantErr != "" {
				var ee *Error
				if !errors.As(err, &ee) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an *Error saying %q, got %T %v", tc.wantErr, err, err)
				}
				if strings.Contains(err.Error(), "warning:") {
					t.Errorf("the message keeps the evaluator's warnings: %v", err)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("got %s, %v; want %s", out, err, tc.want)
			}
		})
	}
}

// TestRunCancelKillsGroup cancels an evaluation that would run for hours,
// started by a wrapper that keeps it as a child (as a shell script or a
// nix-instantiate calling builders would), and checks that Run returns
// context.Canceled and that the child evaluator dies too.
func TestRunCancelKillsGroup(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, Command)
	bin, started := nixevaltest.Wrapper(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, bin, []string{"--eval", "--strict", "--expr", nixevaltest.Forever}, nil)
		done <- err
	}()
	pid := started(time.Minute)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want an error wrapping context.Canceled, got %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context was cancelled")
	}
	testenv.Eventually(t, time.Minute, func() bool { return !nixevaltest.Alive(pid) },
		"the evaluator %d started by the wrapper still runs after the cancellation", pid)
}

func TestRunNotStartedWhenDone(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, "/nonexistent/nix-instantiate", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("line\n", 70)
	tests := []struct{ name, in, want string }{
		{"warnings dropped", "warning: a\nwarning: b\nerror: boom\n  at x\n", "error: boom\n  at x"},
		{"no error line", "something odd\n", "something odd"},
		{"empty", "", ""},
		{"long cut", "error: x\n" + long, "error: x\n" + strings.TrimSuffix(strings.Repeat("line\n", 59), "\n") + "\n..."},
	}
	for _, tc := range tests {
		if got := Message(tc.in); got != tc.want {
			t.Errorf("%s: Message = %q, want %q", tc.name, got, tc.want)
		}
	}
}
