package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// activationWatch checks each service's health check from the
// coordinator's namespace as soon as the loop's log (--log-format json)
// reports its activation done, while the deploy still runs. The first
// deploy's figure then ends when the last service answers rather than
// after a thousand checks begun once the deploy was over (0.6-1.3 s at
// N = 100). It vouches only for what it saw: nothing at all once a step
// of the deploy failed or was undone (a rollback may have stopped what
// answered), and for each service only the machine it answered on.
type activationWatch struct {
	ports  map[string]int
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	ok      map[string]string // service → the machine it answered on
	spoiled bool              // a step failed or was undone
}

// activationCheckers is the number of checks the watch runs at once: the
// deploy it watches has the host's cores busy.
const activationCheckers = 8

// watchActivations starts a watch of the loop's log (from its start: the
// run's log is new) that checks services with the harness's client.
func (h *Harness) watchActivations(ctx context.Context, ports map[string]int) (*activationWatch, error) {
	return watchLog(ctx, h.Path("self-adapt.log"), ports, func(service, machine string) error {
		return h.healthyWith(h.keptAlive(), machine, ports[service])
	})
}

// watchLog watches the log at path, checking with check each service of
// ports whose activation it reports done.
func watchLog(ctx context.Context, path string, ports map[string]int, check func(service, machine string) error) (*activationWatch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &activationWatch{ports: ports, cancel: cancel, ok: map[string]string{}}
	todo := make(chan [2]string, len(ports)+1)
	w.wg.Add(1 + activationCheckers)
	go func() {
		defer w.wg.Done()
		defer close(todo)
		defer f.Close()
		w.tail(ctx, f, todo)
	}()
	for range activationCheckers {
		go func() {
			defer w.wg.Done()
			for st := range todo {
				if ctx.Err() != nil {
					continue
				}
				if check(st[0], st[1]) == nil {
					w.mu.Lock()
					w.ok[st[0]] = st[1]
					w.mu.Unlock()
				}
			}
		}()
	}
	return w, nil
}

// tail reads the log's new lines from r (which ends, for now, at EOF)
// every 50 ms until ctx ends (and then what was written until then) and
// queues every service whose activation is done.
func (w *activationWatch) tail(ctx context.Context, r io.Reader, todo chan<- [2]string) {
	var rest []byte
	buf := make([]byte, 64<<10)
	for stopping := false; ; {
		n, err := r.Read(buf)
		rest = append(rest, buf[:n]...)
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			w.line(rest[:i], todo)
			rest = rest[i+1:]
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if n > 0 {
			continue
		}
		if stopping {
			return
		}
		select {
		case <-ctx.Done():
			stopping = true
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// line takes one log line: a step event of the loop's progress.
func (w *activationWatch) line(b []byte, todo chan<- [2]string) {
	var ev struct {
		Msg, Op, Service, Target, Phase string
	}
	if json.Unmarshal(b, &ev) != nil || ev.Msg != "step" {
		return
	}
	switch {
	case ev.Phase == "failed" || ev.Phase == "undone":
		w.mu.Lock()
		w.spoiled = true
		w.mu.Unlock()
	case ev.Op == "activate" && ev.Phase == "done":
		if _, ok := w.ports[ev.Service]; ok {
			select {
			case todo <- [2]string{ev.Service, ev.Target}:
			default: // a backlog of more than one check per service: settle checks those
			}
		}
	}
}

// confirmed returns the services that answered on the machine st places
// them on (none once a step failed or was undone).
func (w *activationWatch) confirmed(st *Status) map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]string{}
	if w.spoiled {
		return out
	}
	for s, t := range w.ok {
		if st.TargetOf(s) == t {
			out[s] = t
		}
	}
	return out
}

// stop ends the watch, once it has read what the log holds, and waits for
// its checks.
func (w *activationWatch) stop() {
	w.cancel()
	w.wg.Wait()
}
