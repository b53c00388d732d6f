// Package ctl is the operator's client of a running dydisnix-self-adapt
// loop (dydisnix-ctl): it reads the loop's status and sends it commands
// over the loop's control socket (a unix socket in the coordinator's state
// directory, mode 0600: whoever can open it may pause, drain or redeploy),
// and reads a service's output from the agent of the target running it.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// Client talks to one loop over its control socket.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the loop whose control socket is at socket.
func New(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{socket: socket, http: &http.Client{Transport: tr, Timeout: time.Minute}}
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://loop"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("control socket %s (is dydisnix-self-adapt running with this --state-dir?): %w", c.socket, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		var cr adapt.ControlResponse
		if json.Unmarshal(b, &cr) == nil && cr.Error != "" {
			return errors.New(cr.Error)
		}
		return fmt.Errorf("control socket %s: %s: %s", c.socket, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control socket %s: %s answer: %w", c.socket, path, err)
	}
	return nil
}

// Status returns the loop's status with its targets and services (not
// the history of events and deploys).
func (c *Client) Status(ctx context.Context) (*adapt.Status, error) {
	var st adapt.Status
	return &st, c.do(ctx, http.MethodGet, "/status?detail=targets,services", &st)
}

// Command sends an operator's command; target names the target of cordon,
// drain and uncordon.
func (c *Client) Command(ctx context.Context, op adapt.ControlOp, target string) error {
	path := "/v1/" + string(op)
	if target != "" {
		path += "/" + target
	}
	var cr adapt.ControlResponse
	return c.do(ctx, http.MethodPost, path, &cr)
}

// LogsOptions says how Logs reaches the agents.
type LogsOptions struct {
	// Token is the agents' bearer token; Agents says how they are reached
	// (nil: none).
	Token  string
	Agents *deployer.AgentTLS
	// TargetProperty names the target property holding the agent's URL
	// ("": agentURL).
	TargetProperty string
	// Target picks one of the targets running the service ("": all).
	Target string
	// Tail is the number of lines (0: the agent's default).
	Tail int
}

// Logs writes the last lines of service's output to w, read from the agent
// of every target the loop's distribution places it on (with a header
// line per target when there are several).
func (c *Client) Logs(ctx context.Context, service string, o LogsOptions, w io.Writer) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	targets := st.Distribution.Targets(service)
	if len(targets) == 0 {
		return fmt.Errorf("service %q is not deployed (deployed: %s)", service, strings.Join(st.Distribution.Names(), ", "))
	}
	if o.Target != "" {
		if !slices.Contains(targets, o.Target) {
			return fmt.Errorf("service %s does not run on target %s (it runs on %s)", service, o.Target, strings.Join(targets, ", "))
		}
		targets = []string{o.Target}
	}
	for _, t := range targets {
		if len(targets) > 1 {
			fmt.Fprintf(w, "==> %s on %s <==\n", service, t)
		}
		tg := st.Infrastructure[t]
		if tg == nil {
			return fmt.Errorf("target %s is not in the loop's infrastructure", t)
		}
		url, err := deployer.TargetAddress(tg, o.TargetProperty)
		if err != nil {
			return err
		}
		hc, err := o.Agents.Client(tg, url)
		if err != nil {
			return err
		}
		if err := agentapi.NewClient(url, o.Token, hc).Logs(ctx, service, o.Tail, w); err != nil {
			return fmt.Errorf("logs of %s on %s: %w", service, t, err)
		}
	}
	return nil
}

// PrintStatus writes a status for people: the phase, the running step, the
// last deploy, errors, the targets and the distribution.
func PrintStatus(w io.Writer, st *adapt.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "phase:\t%s\n", st.Phase)
	if r := st.Running; r != nil {
		svc := ""
		if r.Service != "" {
			svc = " " + r.Service
		}
		fmt.Fprintf(tw, "running:\t[%d/%d] %s%s on %s (for %s)\n", r.Step, r.Of, r.Op, svc, r.Target, now.Sub(r.Since).Round(time.Second))
	}
	if d := st.LastDeploy; d != nil {
		fmt.Fprintf(tw, "last deploy:\t#%d %s at %s (detection %d ms, redeploy %d ms, %d steps)\n",
			d.Seq, d.Result, d.Finished.Format(time.RFC3339), d.DetectionMs, d.RedeployMs, len(d.Plan))
		if len(d.Moved) > 0 {
			fmt.Fprintf(tw, "moved:\t%s\n", strings.Join(d.Moved, ", "))
		}
		if d.Error != "" {
			fmt.Fprintf(tw, "deploy error:\t%s\n", d.Error)
		}
	}
	if st.RetryAt != nil {
		fmt.Fprintf(tw, "retry at:\t%s\n", st.RetryAt.Format(time.RFC3339))
	}
	if st.ModelsError != "" {
		fmt.Fprintf(tw, "models error:\t%s\n", st.ModelsError)
	}
	if st.SourceError != "" {
		fmt.Fprintf(tw, "discovery error:\t%s\n", st.SourceError)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TARGET\tSTATE\tSINCE\tOPERATOR\tREASON")
	for _, m := range st.Targets {
		op := "-"
		switch {
		case m.Drained:
			op = "drained"
		case m.Cordoned:
			op = "cordoned"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Target, m.State, m.Since.Format(time.RFC3339), op, m.Reason)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SERVICE\tTARGETS")
	for _, s := range st.Distribution.Names() {
		fmt.Fprintf(tw, "%s\t%s\n", s, strings.Join(targetNames(st.Distribution[s]), ", "))
	}
	return tw.Flush()
}

func targetNames(ms []model.Mapping) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Target)
	}
	return out
}
