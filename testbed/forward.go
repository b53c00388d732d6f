package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Forward accepts connections on l, a listener in this process's own
// network namespace (the host's, when it was created before entering the
// testbed's), and relays each to addr inside h's namespace, until l is
// closed. It is how a page served inside the testbed is reachable from the
// host.
func (h *Host) Forward(l net.Listener, addr string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go h.relay(c, addr)
	}
}

func (h *Host) relay(c net.Conn, addr string) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		return // the client sees the connection close: nothing listens
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
}

// ListenStatus opens the host side of the forwarded status page on
// 127.0.0.1:port (0: any free port). With anyIfBusy, a port in use falls
// back to a free one.
func ListenStatus(port int, anyIfBusy bool) (net.Listener, error) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil && anyIfBusy && errors.Is(err, syscall.EADDRINUSE) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("status page on the host: %w (choose another with --status-port)", err)
	}
	return l, nil
}

// passListener makes l the first of cmd's inherited files (fd 3 in the
// child), so that a child in other namespaces accepts on the host's. The
// caller closes the returned copy once cmd has started.
func passListener(cmd *exec.Cmd, l net.Listener) (*os.File, error) {
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		return nil, fmt.Errorf("pass the status listener: %w", err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	return f, nil
}

// InheritedListener is the listener passListener passed as fd.
func InheritedListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "status-listener")
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inherited status listener (fd %d): %w", fd, err)
	}
	return l, nil
}
