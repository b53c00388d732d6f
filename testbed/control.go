package testbed

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Request is one command to a running testbed daemon.
type Request struct {
	Op   string `json:"op"` // add, crash, stop, start, partition, heal, list, down
	Name string `json:"name,omitempty"`
	// Properties are the properties of a machine to add (optional).
	Properties map[string]any `json:"properties,omitempty"`
}

// Response is the daemon's answer.
type Response struct {
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Machines []MachineInfo `json:"machines,omitempty"`
	// PID is the daemon's process; Coordinator the coordinator's network
	// namespace (both for entering namespaces: EnterCommand).
	PID         int    `json:"pid,omitempty"`
	Coordinator string `json:"coordinator,omitempty"`
	// StatusURL is the loop's page on the host, when the daemon runs one.
	StatusURL string `json:"statusURL,omitempty"`
	// LoopError says that the daemon's loop has exited, with the end of
	// its log.
	LoopError string `json:"loopError,omitempty"`
	// Registry is the --registry value of the testbed's etcd cluster.
	Registry string `json:"registry,omitempty"`
}

// MachineInfo describes one machine for `list`.
type MachineInfo struct {
	Name       string         `json:"name"`
	Netns      string         `json:"netns"`
	Address    string         `json:"address"`
	Running    bool           `json:"running"`
	Partition  bool           `json:"partitioned,omitempty"`
	Properties map[string]any `json:"properties"`
}

// SocketPath is the control socket of a testbed directory.
func SocketPath(dir string) string { return filepath.Join(dir, "control.sock") }

// Serve answers requests on the control socket until a "down" request or
// until stop is closed, then closes the testbed.
func (tb *Testbed) Serve(stop <-chan struct{}) error {
	sock := SocketPath(tb.cfg.Dir)
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("testbed control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("testbed control socket: %w", err)
	}
	// The socket file is removed by hand once everything is shut down, not
	// when the listener closes (WaitDown relies on it).
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	down := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-down:
		}
		l.Close()
	}()
	partitioned := map[string]bool{}
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		var req Request
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
			json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
			c.Close()
			continue
		}
		resp := tb.handle(req, partitioned)
		json.NewEncoder(c).Encode(resp)
		c.Close()
		if req.Op == "down" {
			close(down)
			break
		}
	}
	// The socket goes last: a client waiting for it to vanish knows that
	// every namespace is gone.
	err = tb.Close()
	os.Remove(sock)
	return err
}

// DownTimeout is how long WaitDown waits for a testbed of n machines: a
// minute plus a second per machine (killing the machines and deleting
// their namespaces takes longer the more there are).
func DownTimeout(n int) time.Duration { return time.Minute + time.Duration(n)*time.Second }

// WaitDown waits until the daemon of dir has removed its control socket
// (after "down": every machine stopped, every namespace deleted).
func WaitDown(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(SocketPath(dir)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the testbed in %s did not finish shutting down within %s", dir, timeout)
}

func (tb *Testbed) handle(req Request, partitioned map[string]bool) Response {
	var err error
	switch req.Op {
	case "add":
		if req.Name == "" {
			req.Name = fmt.Sprintf("machine%d", len(tb.Machines())+1)
		}
		_, err = tb.Add(req.Name, req.Properties)
	case "crash":
		err = tb.Crash(req.Name)
	case "stop":
		err = tb.Stop(req.Name)
	case "start":
		err = tb.Start(req.Name)
	case "partition":
		if err = tb.Partition(req.Name); err == nil {
			partitioned[req.Name] = true
		}
	case "heal":
		if err = tb.Heal(req.Name); err == nil {
			delete(partitioned, req.Name)
		}
	case "list", "down":
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	if err != nil {
		return Response{Error: err.Error()}
	}
	resp := Response{OK: true, PID: os.Getpid(), Coordinator: tb.coord.Netns, StatusURL: tb.statusURL, Registry: tb.RegistryURL()}
	if tb.loop != nil {
		select {
		case <-tb.loop.loopExited():
			resp.LoopError = fmt.Sprintf("dydisnix-self-adapt has exited; the end of %s:\n%s", tb.loop.Path("self-adapt.log"), tb.loop.LoopLog(5))
		default:
		}
	}
	for _, m := range tb.Machines() {
		resp.Machines = append(resp.Machines, MachineInfo{
			Name: m.Name, Netns: m.Host.Netns, Address: m.Host.Addr.String(),
			Running: m.Running(), Partition: partitioned[m.Name], Properties: m.Properties,
		})
	}
	return resp
}

// Call sends one request to the testbed daemon of dir.
func Call(dir string, req Request) (*Response, error) {
	c, err := net.DialTimeout("unix", SocketPath(dir), 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no testbed runs in %s (start one with 'dydisnix-testbed up')", dir)
		}
		return nil, fmt.Errorf("contact testbed in %s: %w", dir, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("send to testbed: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read testbed answer: %w", err)
	}
	if !resp.OK {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
