// Package agentapi is the wire protocol of dydisnix-agent: the request and
// response types of its HTTP/JSON API and a client for it. Every request
// carries "Authorization: Bearer <token>"; a missing or wrong token gets 401
// on every path.
package agentapi

import (
	"slices"

	"github.com/dydisnix/dydisnix/model"
)

// API paths (all under /v1).
const (
	PathHealth      = "/v1/health"
	PathLock        = "/v1/lock"
	PathUnlock      = "/v1/unlock"
	PathArtifacts   = "/v1/artifacts/"         // + sha256 hex: HEAD (present?), PUT (upload)
	PathActivate    = "/v1/activate"           // POST ActivateRequest
	PathDeactivate  = "/v1/deactivate"         // POST KeyRequest
	PathSnapshot    = "/v1/snapshot"           // POST ServiceRequest → SnapshotInfo
	PathSnapshots   = "/v1/snapshots/"         // + service + "/" + hex: GET (download), PUT (upload); service: GET → []SnapshotInfo
	PathRestore     = "/v1/restore"            // POST RestoreRequest
	PathDeleteState = "/v1/delete-state"       // POST ServiceRequest
	PathGC          = "/v1/collect-garbage"    // POST GCRequest
	PathProfile     = "/v1/profile"            // GET → Profile
	PathDrain       = "/v1/drain"              // GET → DrainStatus
	PathContext     = "/v1/context"            // POST ActivateRequest of an active key: new env/context, no restart
	PathLogs        = "/v1/logs/"              // + service, ?tail=N: GET → the last N lines of its output (text)
	PathDysnomia    = "/v1/dysnomia-snapshots" // POST SnapshotsQuery → SnapshotsResult
	PathMetrics     = "/metrics"               // GET → Prometheus metrics
	PathFence       = "/v1/fence"              // POST with HeaderFence: the agent takes the revision (a new leader's first request)
)

// HeaderFence carries the coordinator's fencing revision (its etcd election
// revision, a decimal integer) on every request of a coordinator that leads
// among several. An agent refuses a lock or a step (any POST or PUT) whose
// revision is lower than the highest it has accepted (409), so a deposed
// leader can never interleave with the new one; a request without it is not
// fenced (a single coordinator).
const HeaderFence = "Dydisnix-Fence"

// ActivateRequest starts a service mapping on the agent.
type ActivateRequest struct {
	// Key is the service key of the mapping.
	Key string `json:"key"`
	// Target is the target's name in the coordinator's infrastructure.
	Target string `json:"target"`
	// Container is the mapping's container.
	Container string `json:"container"`
	// Service is the manifest service (name, type, artifact, args, health check, dependencies).
	Service model.ManifestService `json:"service"`
	// Env is the environment computed by the coordinator (DYDISNIX_SERVICE,
	// DYDISNIX_TARGET, DYDISNIX_PROP_*, DYDISNIX_DEP_*); the agent adds
	// DYDISNIX_STATE_DIR and DYDISNIX_CONTEXT.
	Env map[string]string `json:"env"`
	// Context is the JSON document written to the DYDISNIX_CONTEXT file
	// (the agent adds "stateDir").
	Context map[string]any `json:"context"`
	// ContainerProperties are the scalar properties of the mapping's
	// container on the target (infrastructure containers.<container>, with
	// what augmentation added): a Dysnomia module gets them as environment
	// variables (mysqlUsername, mysqlPassword, mysqlPort, mysqlSocket, ...).
	ContainerProperties map[string]string `json:"containerProperties,omitempty"`
}

// KeyRequest names a service mapping by key.
type KeyRequest struct {
	Key string `json:"key"`
}

// ServiceRequest names a service (its state directory is per service name).
type ServiceRequest struct {
	Service string `json:"service"`
	// Mapping is the mapping whose state is meant (its type, component and
	// container select the Dysnomia module); nil: the agent uses the last
	// mapping of the service it activated.
	Mapping *ActivateRequest `json:"mapping,omitempty"`
}

// RestoreRequest restores a snapshot (already on the agent) into a service's state directory.
type RestoreRequest struct {
	Service string `json:"service"`
	// Digest is the snapshot's "sha256:<hex>"; verified before the restore.
	Digest string `json:"digest"`
	// Mapping is the mapping the state is restored for (see ServiceRequest).
	Mapping *ActivateRequest `json:"mapping,omitempty"`
	// Replace lets a Dysnomia module replace existing data (a database
	// that already holds tables); without it such a restore is refused.
	Replace bool `json:"replace,omitempty"`
}

// GCRequest collects garbage: unreferenced artifacts, state of services
// marked as garbage (deactivated) when DeleteState, and snapshot generations beyond Keep.
type GCRequest struct {
	Keep        int  `json:"keep"`
	DeleteState bool `json:"deleteState"`
}

// GCResult reports what garbage collection removed.
type GCResult struct {
	Artifacts int `json:"artifacts"`
	Snapshots int `json:"snapshots"`
	States    int `json:"states"`
}

// SnapshotInfo describes one snapshot: a gzip-compressed tarball of a state directory.
type SnapshotInfo struct {
	Service string `json:"service"`
	// Digest is "sha256:<hex>" of the compressed tarball.
	Digest     string `json:"digest"`
	Size       int64  `json:"size"`
	Generation int    `json:"generation"`
}

// ProfileEntry is one service mapping of the target's profile manifest.
type ProfileEntry struct {
	Key       string                `json:"key"`
	Target    string                `json:"target"`
	Container string                `json:"container"`
	Service   model.ManifestService `json:"service"`
	// Running and Healthy report the live state of a process service.
	Running bool `json:"running"`
	Healthy bool `json:"healthy"`
	Pid     int  `json:"pid,omitempty"`
	// Restarts counts restarts after crashes since activation.
	Restarts int `json:"restarts"`
}

// Profile is the target's profile manifest: what it runs, and the
// components whose state is kept (garbage = deactivated, state kept).
type Profile struct {
	Services []ProfileEntry `json:"services"`
	Garbage  []string       `json:"garbage,omitempty"`
	// Draining says whether the agent drains (as Health.Draining), so a
	// coordinator's resync asks each agent once. Agents older than this
	// field leave it out (nil): ask their /v1/health.
	Draining *bool `json:"draining,omitempty"`
}

// clone copies p's lists (not the services' maps).
func (p *Profile) clone() *Profile {
	c := *p
	c.Services = slices.Clone(p.Services)
	c.Garbage = slices.Clone(p.Garbage)
	return &c
}

// Health is the agent's health report.
type Health struct {
	Status   string `json:"status"` // "ok" or "draining"
	Draining bool   `json:"draining"`
	Locked   bool   `json:"locked"`
	Services int    `json:"services"`
	Running  int    `json:"running"`
	Version  string `json:"version"`
}

// DrainStatus reports the drain of an agent that received SIGTERM.
type DrainStatus struct {
	Draining bool `json:"draining"`
	// Remaining is the number of services still active on the agent.
	Remaining int `json:"remaining"`
	// Deadline is when the agent stops its processes regardless (RFC 3339), or "".
	Deadline string `json:"deadline,omitempty"`
}

// LockRequest locks the agent for a transition; Owner identifies the
// coordinator run. TTLSeconds > 0 makes the lock a lease that expires
// unless refreshed (Refresh: extend the lease the owner holds).
type LockRequest struct {
	Owner      string `json:"owner"`
	TTLSeconds int    `json:"ttlSeconds,omitempty"`
	Refresh    bool   `json:"refresh,omitempty"`
}

// The operations of a SnapshotsQuery (dysnomia-snapshots' own names).
const (
	QueryAll     = "query-all"
	QueryLatest  = "query-latest"
	QueryResolve = "resolve"
	QueryGC      = "gc"
)

// SnapshotsQuery queries or cleans the agent's Dysnomia snapshot store,
// as dysnomia-snapshots does on a target.
type SnapshotsQuery struct {
	// Op is QueryAll, QueryLatest, QueryResolve or QueryGC.
	Op string `json:"op"`
	// Container and Component filter (""= all).
	Container string `json:"container,omitempty"`
	Component string `json:"component,omitempty"`
	// Check verifies the checksums of the snapshots listed.
	Check bool `json:"check,omitempty"`
	// Keep is the number of generations QueryGC keeps per component.
	Keep int `json:"keep,omitempty"`
	// Paths are the relative snapshot paths (CONTAINER/COMPONENT/ID) to resolve.
	Paths []string `json:"paths,omitempty"`
}

// SnapshotsResult answers a SnapshotsQuery: relative paths (queries, the
// snapshots removed by QueryGC) or absolute paths on the target (QueryResolve).
type SnapshotsResult struct {
	Paths []string `json:"paths"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
