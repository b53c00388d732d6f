package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
	"github.com/dydisnix/dydisnix/model"
)

// fence is the agent's fencing state: the highest coordinator revision
// (agentapi.HeaderFence) it has accepted, kept in fence.json so that a
// restarted agent still refuses a deposed leader.
type fence struct {
	// mu is held for reading by every fenced request while it runs and
	// for writing while a higher revision is admitted: once a new leader's
	// first request is admitted, no request of an older one runs or will.
	mu     sync.RWMutex
	loaded bool
	rev    int64
}

type storedFence struct {
	Revision int64 `json:"revision"`
}

// fenced admits a POST or PUT request carrying a fencing revision only
// when that revision is not lower than the highest accepted so far (409
// otherwise). A higher revision becomes the agent's, and breaks the lock of
// the coordinator it supersedes. Requests without the header, and reads,
// are not fenced.
func (a *Agent) fenced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(agentapi.HeaderFence)
		if v == "" || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
			next.ServeHTTP(w, r)
			return
		}
		rev, err := strconv.ParseInt(v, 10, 64)
		if err != nil || rev <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: expected a positive integer, got %q", agentapi.HeaderFence, v))
			return
		}
		release, err := a.admit(rev)
		if err != nil {
			a.reply(w, nil, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// serveFence answers POST /v1/fence: the fenced middleware has admitted
// (and so taken) the request's revision; one without a revision is an
// error.
func (a *Agent) serveFence(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(agentapi.HeaderFence) == "" {
		writeError(w, http.StatusBadRequest, "fence: no "+agentapi.HeaderFence+" header")
		return
	}
	a.reply(w, nil, nil)
}

// admit waits until revision rev may run and returns the release of its
// admission, or an error when rev is lower than the agent's revision.
func (a *Agent) admit(rev int64) (release func(), err error) {
	f := &a.fence
	for {
		f.mu.RLock()
		if f.loaded && rev == f.rev {
			return f.mu.RUnlock, nil
		}
		if f.loaded && rev < f.rev {
			cur := f.rev
			f.mu.RUnlock()
			a.log.Warn("fenced: request of a deposed coordinator refused", zap.Int64("revision", rev), zap.Int64("current", cur))
			return nil, &httpError{http.StatusConflict, fmt.Sprintf("fenced: coordinator revision %d is older than %d, the revision of the coordinator that leads now", rev, cur)}
		}
		f.mu.RUnlock()
		if err := a.raiseFence(rev); err != nil {
			return nil, err
		}
	}
}

// raiseFence makes rev the agent's revision when it is higher (loading
// fence.json first), breaking the lock an older coordinator holds.
func (a *Agent) raiseFence(rev int64) error {
	f := &a.fence
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded {
		b, err := os.ReadFile(a.path("fence.json"))
		var sf storedFence
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("agent: read fence.json: %w", err)
		default:
			if err := json.Unmarshal(b, &sf); err != nil {
				return fmt.Errorf("agent: %s: %w", a.path("fence.json"), err)
			}
		}
		f.rev, f.loaded = sf.Revision, true
	}
	if rev <= f.rev {
		return nil
	}
	b, _ := json.Marshal(storedFence{Revision: rev})
	if err := model.WriteFileAtomic(a.path("fence.json"), b, 0o600); err != nil {
		return fmt.Errorf("agent: record fence: %w", err)
	}
	a.log.Info("fence raised: a new coordinator leads", zap.Int64("revision", rev), zap.Int64("previous", f.rev))
	f.rev = rev
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lockHeldLocked() {
		a.log.Warn("lock of a deposed coordinator broken", zap.String("owner", a.lockOwner), zap.Int64("revision", rev))
		if err := a.saveLock("", time.Time{}); err != nil {
			return err
		}
		a.lockOwner, a.lockUntil = "", time.Time{}
		a.notifyLocked()
	}
	return nil
}
