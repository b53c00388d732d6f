package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client talks to one agent.
type Client struct {
	// BaseURL is the agent's URL (http://host:port).
	BaseURL string
	// Fence, when set, returns the fencing revision sent with every
	// request (HeaderFence; 0: none).
	Fence func() int64
	token string
	http  *http.Client

	profMu  sync.Mutex
	profTag string   // the ETag of prof
	prof    *Profile // the last profile read, asked for again with If-None-Match
}

// NewClient returns a client for the agent at baseURL using the bearer
// token. hc may be nil (a client with a 2-minute overall timeout is used).
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), token: token, http: hc}
}

// StatusError is an error answer of the agent.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("agent: %d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

// IsStatus reports whether err is an agent answer with the given status code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// maxResends bounds how often a request that failed on a kept-alive
// connection is sent again.
const maxResends = 3

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	_, err := c.doHeader(ctx, method, path, body, ctype, nil, out)
	return err
}

// doHeader is do with extra request headers; it returns the answer's
// headers (nil on error).
func (c *Client) doHeader(ctx context.Context, method, path string, body io.Reader, ctype string, hdr http.Header, out any) (http.Header, error) {
	rewind := rewinder(body)
	resp, reused, err := c.send(ctx, method, path, body, ctype, hdr)
	for tries := 1; err != nil && reused && tries <= maxResends && ctx.Err() == nil && rewind(); tries++ {
		// The agent closed a kept-alive connection as this request went
		// out on it (its idle timeout): every agent request is idempotent
		// (keyed by service key, lock owner or digest), so it is sent
		// again. The next idle connection may have been closed too (an
		// agent that closed them all at once), so this goes on while the
		// failures are on connections used before, a few times at most.
		resp, reused, err = c.send(ctx, method, path, body, ctype, hdr)
	}
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", c.BaseURL, err)
	}
	// Read to the end before closing (the newline after the JSON, the
	// last chunk): a body closed early closes its connection, and the
	// next request to this agent would make a new TLS handshake.
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e Error
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &StatusError{Code: resp.StatusCode, Msg: msg}
	}
	if out == nil {
		return resp.Header, nil // the body is read by the deferred drain
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return resp.Header, err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("agent %s %s: decode answer: %w", c.BaseURL, path, err)
	}
	return resp.Header, nil
}

// rewinder returns a function that makes a request body readable again
// from where it is now, and reports whether it could (no body, or one that
// seeks: JSON and files).
func rewinder(body io.Reader) func() bool {
	if body == nil {
		return func() bool { return true }
	}
	sk, ok := body.(io.Seeker)
	if !ok {
		return func() bool { return false }
	}
	at, err := sk.Seek(0, io.SeekCurrent)
	return func() bool {
		if err != nil {
			return false
		}
		_, err := sk.Seek(at, io.SeekStart)
		return err == nil
	}
}

// send sends one request and reports whether it went out on a connection
// used before. A body that is also a Closer is left open.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype string, hdr http.Header) (*http.Response, bool, error) {
	reused := false
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
	if _, ok := body.(io.Closer); ok {
		// The transport closes a body that closes; the caller's file
		// stays open for a second send (and is closed by the caller).
		body = struct{ io.Reader }{body}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, false, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.Fence != nil {
		if rev := c.Fence(); rev > 0 {
			req.Header.Set(HeaderFence, strconv.FormatInt(rev, 10))
		}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	return resp, reused, err
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out)
}

// Health returns the agent's health.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	return &h, c.do(ctx, http.MethodGet, PathHealth, nil, "", &h)
}

// Lock locks the agent for owner; a second lock fails with 409.
func (c *Client) Lock(ctx context.Context, owner string) error {
	return c.post(ctx, PathLock, LockRequest{Owner: owner}, nil)
}

// LockLease locks the agent for owner with a lease of ttl (whole seconds,
// at least 1), or extends the lease owner holds when refresh is set.
func (c *Client) LockLease(ctx context.Context, owner string, ttl time.Duration, refresh bool) error {
	secs := int(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	return c.post(ctx, PathLock, LockRequest{Owner: owner, TTLSeconds: secs, Refresh: refresh}, nil)
}

// RaiseFence makes the agent take the client's fencing revision (Fence)
// unless it follows a higher one (409): from then on it refuses every lock
// and step of a lower revision.
func (c *Client) RaiseFence(ctx context.Context) error {
	return c.post(ctx, PathFence, struct{}{}, nil)
}

// Unlock releases the lock held by owner.
func (c *Client) Unlock(ctx context.Context, owner string) error {
	return c.post(ctx, PathUnlock, LockRequest{Owner: owner}, nil)
}

// HasArtifact reports whether the agent holds the artifact with digest "sha256:<hex>".
func (c *Client) HasArtifact(ctx context.Context, digest string) (bool, error) {
	err := c.do(ctx, http.MethodHead, PathArtifacts+strings.TrimPrefix(digest, "sha256:"), nil, "", nil)
	if IsStatus(err, http.StatusNotFound) {
		return false, nil
	}
	return err == nil, err
}

// UploadArtifact uploads file as the artifact with the given digest,
// unless the agent has it already. It reports whether bytes were sent.
func (c *Client) UploadArtifact(ctx context.Context, digest, file string) (bool, error) {
	if ok, err := c.HasArtifact(ctx, digest); err != nil || ok {
		return false, err
	}
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return true, c.do(ctx, http.MethodPut, PathArtifacts+strings.TrimPrefix(digest, "sha256:"), f, "application/octet-stream", nil)
}

// Activate starts a service mapping and returns once it runs and is healthy.
func (c *Client) Activate(ctx context.Context, req ActivateRequest) error {
	return c.post(ctx, PathActivate, req, nil)
}

// UpdateContext replaces the environment and context document of an
// active mapping (same key) without restarting it: the DYDISNIX_CONTEXT
// file is rewritten at once, the environment applies from the next restart.
func (c *Client) UpdateContext(ctx context.Context, req ActivateRequest) error {
	return c.post(ctx, PathContext, req, nil)
}

// Deactivate stops a service mapping (its state directory is kept).
func (c *Client) Deactivate(ctx context.Context, key string) error {
	return c.post(ctx, PathDeactivate, KeyRequest{Key: key}, nil)
}

// Snapshot snapshots a service's state directory into the agent's snapshot store.
func (c *Client) Snapshot(ctx context.Context, service string) (*SnapshotInfo, error) {
	return c.SnapshotMapping(ctx, ServiceRequest{Service: service})
}

// SnapshotMapping snapshots the state of a service; req.Mapping names the
// mapping (type, component, container) whose Dysnomia module takes it.
func (c *Client) SnapshotMapping(ctx context.Context, req ServiceRequest) (*SnapshotInfo, error) {
	var s SnapshotInfo
	return &s, c.post(ctx, PathSnapshot, req, &s)
}

// Snapshots lists a service's snapshot generations on the agent, oldest first.
func (c *Client) Snapshots(ctx context.Context, service string) ([]SnapshotInfo, error) {
	var s []SnapshotInfo
	return s, c.do(ctx, http.MethodGet, PathSnapshots+service, nil, "", &s)
}

// FetchSnapshot downloads a snapshot into w.
func (c *Client) FetchSnapshot(ctx context.Context, service, digest string, w io.Writer) error {
	return c.do(ctx, http.MethodGet, PathSnapshots+service+"/"+strings.TrimPrefix(digest, "sha256:"), nil, "", w)
}

// PutSnapshot uploads a snapshot; the agent verifies the digest.
func (c *Client) PutSnapshot(ctx context.Context, service, digest string, r io.Reader) error {
	return c.do(ctx, http.MethodPut, PathSnapshots+service+"/"+strings.TrimPrefix(digest, "sha256:"), r, "application/octet-stream", nil)
}

// Restore restores a snapshot the agent holds into the service's state directory.
func (c *Client) Restore(ctx context.Context, service, digest string) error {
	return c.RestoreMapping(ctx, RestoreRequest{Service: service, Digest: digest})
}

// RestoreMapping restores a snapshot the agent holds for req.Mapping
// (through its Dysnomia module when its type has one).
func (c *Client) RestoreMapping(ctx context.Context, req RestoreRequest) error {
	return c.post(ctx, PathRestore, req, nil)
}

// DeleteState deletes the state directory of a service that is not active.
func (c *Client) DeleteState(ctx context.Context, service string) error {
	return c.post(ctx, PathDeleteState, ServiceRequest{Service: service}, nil)
}

// CollectGarbage removes unreferenced artifacts and old snapshot generations.
func (c *Client) CollectGarbage(ctx context.Context, req GCRequest) (*GCResult, error) {
	var r GCResult
	return &r, c.post(ctx, PathGC, req, &r)
}

// DysnomiaSnapshots queries or cleans the agent's Dysnomia snapshot store.
func (c *Client) DysnomiaSnapshots(ctx context.Context, q SnapshotsQuery) (*SnapshotsResult, error) {
	var r SnapshotsResult
	return &r, c.post(ctx, PathDysnomia, q, &r)
}

// Profile returns the agent's profile manifest. The client keeps the last
// one and asks with its ETag: an agent whose profile did not change
// answers 304 without a body, and the kept one is returned (a copy of its
// list; the services' maps are shared between answers: read them only).
func (c *Client) Profile(ctx context.Context) (*Profile, error) {
	c.profMu.Lock()
	tag, last := c.profTag, c.prof
	c.profMu.Unlock()
	var hdr http.Header
	if tag != "" {
		hdr = http.Header{"If-None-Match": {tag}}
	}
	var p Profile
	rh, err := c.doHeader(ctx, http.MethodGet, PathProfile, nil, "", hdr, &p)
	if IsStatus(err, http.StatusNotModified) && last != nil {
		return last.clone(), nil
	}
	if err != nil {
		return nil, err
	}
	c.profMu.Lock()
	c.profTag, c.prof = rh.Get("ETag"), p.clone()
	c.profMu.Unlock()
	return &p, nil
}

// Drain returns the agent's drain status.
func (c *Client) Drain(ctx context.Context) (*DrainStatus, error) {
	var d DrainStatus
	return &d, c.do(ctx, http.MethodGet, PathDrain, nil, "", &d)
}

// Logs writes the last tail lines of service's output on the agent to w
// (tail 0: the agent's default).
func (c *Client) Logs(ctx context.Context, service string, tail int, w io.Writer) error {
	path := PathLogs + url.PathEscape(service)
	if tail > 0 {
		path += "?tail=" + strconv.Itoa(tail)
	}
	return c.do(ctx, http.MethodGet, path, nil, "", w)
}
