package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestActivationWatch: the watch checks each service whose activation the
// loop logs done, reading lines the loop writes in pieces; it vouches for
// a service only on the machine it answered on, for none once a step
// failed or was undone, and not for a service whose check failed.
func TestActivationWatch(t *testing.T) {
	t.Parallel()
	step := func(service, machine, phase string) string {
		return fmt.Sprintf(`{"level":"info","msg":"step","op":"activate","service":%q,"target":%q,"phase":%q}`+"\n", service, machine, phase)
	}
	tests := []struct {
		name  string
		lines []string
		want  map[string]string // of confirmed(placed)
	}{
		{"answered where placed", []string{step("a", "m1", "started"), step("a", "m1", "done"), step("b", "m2", "done")},
			map[string]string{"a": "m1", "b": "m2"}},
		{"answered elsewhere", []string{step("a", "m2", "done"), step("b", "m2", "done")},
			map[string]string{"b": "m2"}},
		{"check failed", []string{step("a", "m1", "done"), step("c", "m1", "done"), step("b", "m2", "done")},
			map[string]string{"a": "m1", "b": "m2"}},
		{"a step undone", []string{step("a", "m1", "done"), step("b", "m2", "done"), step("a", "m1", "undone")},
			map[string]string{}},
		{"a step failed", []string{step("a", "m1", "done"), `{"msg":"step","op":"lock","target":"m3","phase":"failed"}` + "\n", step("b", "m2", "done")},
			map[string]string{}},
	}
	placed := &Status{Distribution: map[string][]any{"a": []any{"m1"}, "b": []any{"m2"}, "c": []any{"m1"}}}
	ports := map[string]int{"a": 1, "b": 2, "c": 3}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "self-adapt.log")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checked := make(chan string, len(tc.lines))
			w, err := watchLog(context.Background(), path, ports, func(service, machine string) error {
				defer func() { checked <- service }()
				if service == "c" {
					return errors.New("connection refused")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer w.stop()
			dones := 0
			for _, l := range tc.lines {
				// Each line in two writes (a read between them:
				// TestActivationWatchJoinsSplitLines).
				f.WriteString(l[:len(l)/2])
				f.Sync()
				f.WriteString(l[len(l)/2:])
				if strings.Contains(l, `"op":"activate"`) && strings.Contains(l, `"phase":"done"`) {
					dones++
				}
			}
			for range dones {
				select {
				case <-checked:
				case <-time.After(time.Minute):
					t.Fatalf("the watch did not check the %d activations done in a minute", dones)
				}
			}
			// stop reads what the log holds: a step undone after the last
			// activation is seen.
			w.stop()
			if got := w.confirmed(placed); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("confirmed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestActivationWatchJoinsSplitLines: a line the loop has written only in
// part when the watch reads is taken whole once the rest is there.
func TestActivationWatchJoinsSplitLines(t *testing.T) {
	t.Parallel()
	line := `{"level":"info","msg":"step","op":"activate","service":"a","target":"m1","phase":"done"}` + "\n"
	r := &pieces{parts: []string{line[:10], line[10:50], line[50:] + line[:30], line[30:]}, drained: make(chan struct{})}
	w := &activationWatch{ports: map[string]int{"a": 1}, ok: map[string]string{}}
	todo := make(chan [2]string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	drained := r.drained // Read clears it
	go func() { <-drained; cancel() }()
	w.tail(ctx, r, todo)
	close(todo)
	var got [][2]string
	for x := range todo {
		got = append(got, x)
	}
	if want := [][2]string{{"a", "m1"}, {"a", "m1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("queued %v, want %v", got, want)
	}
}

// pieces reads its parts one at a time, each followed by io.EOF (the end
// of what the log holds so far), and closes drained after the last.
type pieces struct {
	parts   []string
	eof     bool
	drained chan struct{}
}

func (p *pieces) Read(b []byte) (int, error) {
	if p.eof || len(p.parts) == 0 {
		p.eof = false
		if len(p.parts) == 0 && p.drained != nil {
			close(p.drained)
			p.drained = nil
		}
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	p.parts[0] = p.parts[0][n:]
	if p.parts[0] == "" {
		p.parts = p.parts[1:]
		p.eof = true
	}
	return n, nil
}
