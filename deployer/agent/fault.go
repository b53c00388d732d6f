package agent

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
)

// FaultDirEnv is the environment variable that enables the test-only fault
// hook of dydisnix-agent: the directory it names is Config.FaultDir. The
// hook exists for the testbed's fault-injection tests
// (docs/reliability.md). No request can enable or drive it: it is read
// from the agent's own environment at start, and it is steered only
// through files in that directory, which a network peer cannot write.
const FaultDirEnv = "DYDISNIX_AGENT_FAULT_DIR"

// Fault-hook operations: the names of the files in Config.FaultDir.
const (
	FaultLock       = "lock"        // POST /v1/lock (not a lease renewal)
	FaultUnlock     = "unlock"      // POST /v1/unlock, before the unlock
	FaultUnlockDone = "unlock-done" // POST /v1/unlock, after the unlock, before the answer
	FaultUpload     = "upload"      // HEAD or PUT /v1/artifacts/…
	FaultDeactivate = "deactivate"  // POST /v1/deactivate
	FaultActivate   = "activate"    // POST /v1/activate
	FaultSnapshot   = "snapshot"    // POST /v1/snapshot
	FaultTransfer   = "transfer"    // PUT /v1/snapshots/… (the receiving end)
	FaultRestore    = "restore"     // POST /v1/restore
)

// fault runs the fault hook for op, once per arming: when the file
// FaultDir/op holds "fail", it is renamed to op.failed and the request is
// answered 500; when it holds "block", it is renamed to op.held and the
// request waits until op.held is removed (or the request ends), then
// proceeds. It reports whether the request was answered.
func (a *Agent) fault(w http.ResponseWriter, r *http.Request, op string) bool {
	if a.cfg.FaultDir == "" {
		return false
	}
	file := filepath.Join(a.cfg.FaultDir, op)
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	mode := strings.TrimSpace(string(data))
	switch mode {
	case "fail", "block":
	default:
		a.log.Warn("fault hook: unknown mode, ignored", zap.String("op", op), zap.String("mode", mode))
		return false
	}
	marker := file + ".failed"
	if mode == "block" {
		marker = file + ".held"
	}
	if err := os.Rename(file, marker); err != nil {
		return false // another request consumed it
	}
	a.log.Warn("fault hook: injecting", zap.String("op", op), zap.String("mode", mode))
	if mode == "fail" {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("injected fault: %s fails", op))
		return true
	}
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
			return false
		}
		select {
		case <-r.Context().Done():
			return false
		case <-poll.C:
		}
	}
}
