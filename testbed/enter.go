package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// EnterCommand returns the command line that runs argv inside the network
// namespace of machine name ("coordinator" for the loop's) of the testbed
// resp describes (a "list" answer). When this process shares the daemon's
// user namespace (the testbed runs as root) that is 'ip netns exec';
// otherwise the namespaces exist only inside the daemon's private user and
// mount namespaces, which nsenter joins first (the same user may do so: the
// daemon's user namespace is its own).
func EnterCommand(resp *Response, name string, argv []string) ([]string, error) {
	netns := ""
	if name == "coordinator" {
		netns = resp.Coordinator
	}
	for _, m := range resp.Machines {
		if m.Name == name {
			netns = m.Netns
		}
	}
	if netns == "" {
		return nil, fmt.Errorf("no machine %s in the testbed", name)
	}
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return nil, fmt.Errorf("own user namespace: %w", err)
	}
	daemon, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", resp.PID))
	if err != nil {
		return nil, fmt.Errorf("the testbed daemon's user namespace (pid %d): %w", resp.PID, err)
	}
	return enterArgs(netns, resp.PID, self == daemon, argv), nil
}

func enterArgs(netns string, pid int, sameUserNS bool, argv []string) []string {
	inNetns := append([]string{"ip", "netns", "exec", netns}, argv...)
	if sameUserNS {
		return inNetns
	}
	return append([]string{"nsenter", "--target", strconv.Itoa(pid), "--user", "--mount", "--preserve-credentials", "--"}, inNetns...)
}

// Enter replaces this process with argv (default: the user's shell) run
// inside machine name of the testbed in dir (see EnterCommand). It returns
// only on failure.
func Enter(dir, name string, argv []string) error {
	resp, err := Call(dir, Request{Op: "list"})
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		argv = []string{os.Getenv("SHELL")}
		if argv[0] == "" {
			argv[0] = "/bin/sh"
		}
	}
	line, err := EnterCommand(resp, name, argv)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(line[0])
	if err != nil {
		return fmt.Errorf("enter %s: %w", name, err)
	}
	return fmt.Errorf("exec %s: %w", strings.Join(line, " "), syscall.Exec(path, line, os.Environ()))
}
