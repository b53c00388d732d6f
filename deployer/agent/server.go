package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dydisnix/dydisnix/deployer/agentapi"
)

// maxJSON bounds JSON request bodies.
const maxJSON = 8 << 20

// Handler returns the agent's HTTP API. Every request must carry the
// bearer token (compared in constant time); otherwise the answer is 401
// whatever the path — /metrics and /v1/logs included (the services' output
// may hold anything; Prometheus sends the token with
// authorization.credentials_file).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathHealth, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.Health()) })
	mux.HandleFunc("GET "+agentapi.PathDrain, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.DrainStatus()) })
	mux.HandleFunc("GET "+agentapi.PathProfile, func(w http.ResponseWriter, r *http.Request) {
		// With an ETag (the answer's digest), a coordinator that polls
		// an unchanged profile gets 304 and decodes nothing.
		b, err := json.Marshal(a.Profile(r.Context()))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		b = append(b, '\n')
		sum := sha256.Sum256(b)
		tag := `"` + hex.EncodeToString(sum[:16]) + `"`
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("POST "+agentapi.PathLock, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.LockRequest
		if decode(w, r, &req) && (req.Refresh || !a.fault(w, r, FaultLock)) {
			a.reply(w, nil, a.Lock(r.Context(), req.Owner, time.Duration(req.TTLSeconds)*time.Second, req.Refresh))
		}
	})
	mux.HandleFunc("POST "+agentapi.PathFence, a.serveFence)
	mux.HandleFunc("POST "+agentapi.PathUnlock, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.LockRequest
		if decode(w, r, &req) && !a.fault(w, r, FaultUnlock) {
			err := a.Unlock(r.Context(), req.Owner)
			if err == nil && a.fault(w, r, FaultUnlockDone) {
				return
			}
			a.reply(w, nil, err)
		}
	})
	mux.HandleFunc("HEAD "+agentapi.PathArtifacts+"{digest}", func(w http.ResponseWriter, r *http.Request) {
		if a.fault(w, r, FaultUpload) {
			return
		}
		if !a.HasArtifact(r.PathValue("digest")) {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	mux.HandleFunc("PUT "+agentapi.PathArtifacts+"{digest}", func(w http.ResponseWriter, r *http.Request) {
		if a.fault(w, r, FaultUpload) {
			return
		}
		if r.ContentLength > a.cfg.MaxUpload {
			a.reply(w, nil, uploadTooLarge(a.cfg.MaxUpload))
			return
		}
		a.reply(w, nil, a.PutArtifact(r.PathValue("digest"), r.Body))
	})
	mux.HandleFunc("POST "+agentapi.PathActivate, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.ActivateRequest
		if decode(w, r, &req) && !a.fault(w, r, FaultActivate) {
			err := a.Activate(r.Context(), req)
			a.metrics.activations.WithLabelValues(result(err)).Inc()
			a.reply(w, nil, err)
		}
	})
	mux.HandleFunc("POST "+agentapi.PathContext, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.ActivateRequest
		if decode(w, r, &req) {
			a.reply(w, nil, a.UpdateContext(req))
		}
	})
	mux.HandleFunc("POST "+agentapi.PathDeactivate, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.KeyRequest
		if decode(w, r, &req) && !a.fault(w, r, FaultDeactivate) {
			err := a.Deactivate(r.Context(), req.Key)
			if err == nil {
				a.metrics.deactivated.Inc()
			}
			a.reply(w, nil, err)
		}
	})
	mux.HandleFunc("POST "+agentapi.PathSnapshot, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.ServiceRequest
		if decode(w, r, &req) && !a.fault(w, r, FaultSnapshot) {
			info, err := a.Snapshot(r.Context(), req)
			a.reply(w, info, err)
		}
	})
	mux.HandleFunc("GET "+agentapi.PathSnapshots+"{service}", func(w http.ResponseWriter, r *http.Request) {
		svc := r.PathValue("service")
		if err := a.checkService(svc); err != nil {
			a.reply(w, nil, err)
			return
		}
		gens := a.generations(svc)
		if gens == nil {
			gens = []agentapi.SnapshotInfo{}
		}
		writeJSON(w, gens)
	})
	mux.HandleFunc("GET "+agentapi.PathSnapshots+"{service}/{digest}", func(w http.ResponseWriter, r *http.Request) {
		file, err := a.SnapshotFile(r.PathValue("service"), r.PathValue("digest"))
		if err != nil {
			a.reply(w, nil, err)
			return
		}
		f, err := os.Open(file)
		if err != nil {
			a.reply(w, nil, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/gzip")
		io.Copy(w, f)
	})
	mux.HandleFunc("PUT "+agentapi.PathSnapshots+"{service}/{digest}", func(w http.ResponseWriter, r *http.Request) {
		if a.fault(w, r, FaultTransfer) {
			return
		}
		if r.ContentLength > a.cfg.MaxUpload {
			a.reply(w, nil, uploadTooLarge(a.cfg.MaxUpload))
			return
		}
		a.reply(w, nil, a.PutSnapshot(r.PathValue("service"), r.PathValue("digest"), r.Body))
	})
	mux.HandleFunc("POST "+agentapi.PathRestore, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.RestoreRequest
		if decode(w, r, &req) && !a.fault(w, r, FaultRestore) {
			a.reply(w, nil, a.Restore(r.Context(), req))
		}
	})
	mux.HandleFunc("POST "+agentapi.PathDeleteState, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.ServiceRequest
		if decode(w, r, &req) {
			a.reply(w, nil, a.DeleteState(r.Context(), req.Service))
		}
	})
	mux.HandleFunc("POST "+agentapi.PathGC, func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.GCRequest
		if decode(w, r, &req) {
			res, err := a.CollectGarbage(r.Context(), req)
			a.reply(w, res, err)
		}
	})
	mux.HandleFunc("POST "+agentapi.PathDysnomia, func(w http.ResponseWriter, r *http.Request) {
		var q agentapi.SnapshotsQuery
		if decode(w, r, &q) {
			res, err := a.DysnomiaSnapshots(q)
			a.reply(w, res, err)
		}
	})
	mux.HandleFunc("GET "+agentapi.PathLogs+"{service}", func(w http.ResponseWriter, r *http.Request) {
		n, err := parseTail(r.URL.Query().Get("tail"))
		if err != nil {
			a.reply(w, nil, err)
			return
		}
		b, err := a.ServiceLog(r.PathValue("service"), n)
		if err != nil {
			a.reply(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b)
	})
	mux.Handle("GET "+agentapi.PathMetrics, a.metrics.handler())
	return a.metrics.count(a.authenticate(a.fenced(mux)))
}

func result(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}

func (a *Agent) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + string(a.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dydisnix-agent"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(agentapi.Error{Error: "unauthorized: missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxJSON))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid JSON request: "+err.Error())
		return false
	}
	return true
}

func (a *Agent) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		code := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			code = he.code
		} else if strings.HasPrefix(err.Error(), "activate ") {
			code = http.StatusUnprocessableEntity
		}
		a.log.Warn("request failed", zap.Int("status", code), zap.Error(err))
		writeError(w, code, err.Error())
		return
	}
	if v == nil {
		v = map[string]string{"status": "ok"}
	}
	writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(agentapi.Error{Error: msg})
}
