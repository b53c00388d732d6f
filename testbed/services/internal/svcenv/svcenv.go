// Package svcenv reads the environment the dydisnix agent gives a process
// service (DYDISNIX_SERVICE, DYDISNIX_TARGET, DYDISNIX_STATE_DIR,
// DYDISNIX_PROP_<NAME>, DYDISNIX_DEP_<SERVICE>_<NAME>, DYDISNIX_CONTEXT) and
// holds the small amount of plumbing the example services share: where to
// listen, how to reach a dependency, and serving HTTP until SIGTERM.
package svcenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment variable names and prefixes of the agent's convention.
const (
	VarService  = "DYDISNIX_SERVICE"
	VarTarget   = "DYDISNIX_TARGET"
	VarStateDir = "DYDISNIX_STATE_DIR"
	VarContext  = "DYDISNIX_CONTEXT"
	PrefixProp  = "DYDISNIX_PROP_"
	PrefixDep   = "DYDISNIX_DEP_"
)

// EnvName encodes a service or property name the way the agent does in
// variable names: upper case, every character other than A-Z and 0-9 as "_".
func EnvName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Env is the environment of one service process.
type Env struct {
	// Service is the service's name (DYDISNIX_SERVICE).
	Service string
	// Target is the name of the target it runs on (DYDISNIX_TARGET).
	Target string
	// StateDir is its state directory (DYDISNIX_STATE_DIR), "" if none.
	StateDir string
	// Context is the decoded DYDISNIX_CONTEXT file, nil if none.
	Context map[string]any

	lookup func(string) (string, bool)
	vars   []string
}

// Load reads the process environment. A DYDISNIX_CONTEXT file that cannot be
// read or decoded is an error.
func Load() (*Env, error) {
	return FromEnviron(os.Environ())
}

// FromEnviron reads an environment given as KEY=VALUE strings.
func FromEnviron(environ []string) (*Env, error) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	e := &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }, vars: environ}
	e.Service, _ = e.lookup(VarService)
	e.Target, _ = e.lookup(VarTarget)
	e.StateDir, _ = e.lookup(VarStateDir)
	if f, ok := e.lookup(VarContext); ok && f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", VarContext, err)
		}
		if err := json.Unmarshal(data, &e.Context); err != nil {
			return nil, fmt.Errorf("%s %s: invalid JSON: %w", VarContext, f, err)
		}
	}
	return e, nil
}

// Get returns an environment variable.
func (e *Env) Get(name string) (string, bool) {
	v, ok := e.lookup(name)
	return v, ok && v != ""
}

// Prop returns the service property name (DYDISNIX_PROP_<NAME>).
func (e *Env) Prop(name string) (string, bool) {
	return e.Get(PrefixProp + EnvName(name))
}

// PropDuration returns a duration property given in milliseconds (a plain
// number) or as a Go duration ("250ms", "2s"); def when it is not set.
func (e *Env) PropDuration(name string, def time.Duration) (time.Duration, error) {
	v, ok := e.Prop(name)
	if !ok {
		return def, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s%s=%q: expected milliseconds or a duration such as 500ms", PrefixProp, EnvName(name), v)
	}
	return d, nil
}

// ListenAddr returns host:port to listen on: the host is DYDISNIX_PROP_BIND,
// else DYDISNIX_PROP_HOST, else 0.0.0.0 (every interface of the target);
// the port is DYDISNIX_PROP_PORT, which must be set (0 picks a free port).
func (e *Env) ListenAddr() (string, error) {
	port, ok := e.Prop("port")
	if !ok {
		return "", fmt.Errorf("%sPORT is not set: give the service a port property", PrefixProp)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%sPORT=%q: expected a port number", PrefixProp, port)
	}
	host := "0.0.0.0"
	if h, ok := e.Prop("bind"); ok {
		host = h
	} else if h, ok := e.Prop("host"); ok {
		host = h
	}
	return net.JoinHostPort(host, port), nil
}

// AdvertiseHost returns the host other services should use to reach this
// one: DYDISNIX_PROP_HOST, else DYDISNIX_TARGET_HOST (the address of the
// target as the deployer reaches it), else DYDISNIX_TARGET, else the
// machine's host name.
func (e *Env) AdvertiseHost() string {
	if h, ok := e.Prop("host"); ok {
		return h
	}
	if h, ok := e.Get("DYDISNIX_TARGET_HOST"); ok {
		return h
	}
	if e.Target != "" {
		return e.Target
	}
	h, _ := os.Hostname()
	return h
}

// Deps returns the names of every inter-dependency: the keys of the context
// document's dependsOn and connectsTo when there is a context, else the
// encoded names (EnvName) of every DYDISNIX_DEP_<SERVICE>_TARGET variable;
// sorted.
func (e *Env) Deps() []string {
	seen := map[string]bool{}
	if e.Context != nil {
		for _, key := range []string{"dependsOn", "connectsTo"} {
			if m, ok := e.Context[key].(map[string]any); ok {
				for name := range m {
					seen[name] = true
				}
			}
		}
	} else {
		for _, kv := range e.vars {
			k, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, PrefixDep) && strings.HasSuffix(k, "_TARGET") {
				name := strings.TrimSuffix(strings.TrimPrefix(k, PrefixDep), "_TARGET")
				if name != "" {
					seen[name] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Dep is how to reach one inter-dependency.
type Dep struct {
	// Service is the dependency's name as given (or its encoded form).
	Service string
	// Target is the host its target is reached at (DYDISNIX_DEP_<S>_TARGET).
	Target string
	// Host is the address to connect to.
	Host string
	// Port is its port (DYDISNIX_DEP_<S>_PORT).
	Port int
}

// Addr returns host:port.
func (d Dep) Addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// Pick chooses a dependency: the service named by the property prop when it
// is set, else the only dependency when there is exactly one, else def.
func (e *Env) Pick(prop, def string) (string, error) {
	if v, ok := e.Prop(prop); ok {
		return v, nil
	}
	if deps := e.Deps(); len(deps) == 1 {
		return deps[0], nil
	}
	if def == "" {
		return "", fmt.Errorf("cannot tell which dependency to use: set the %q property (dependencies: %v)", prop, e.Deps())
	}
	return def, nil
}

// Dep resolves the dependency service (a name or its encoded form). The host
// is, in order: DYDISNIX_DEP_<S>_HOST (the dependency's own host property),
// DYDISNIX_DEP_<S>_ADDRESS, the "host" of the dependency's first location in
// the context document, and DYDISNIX_DEP_<S>_TARGET (the host of the target
// it runs on, as the deployer reaches it). The port is DYDISNIX_DEP_<S>_PORT.
func (e *Env) Dep(service string) (Dep, error) {
	enc := EnvName(service)
	get := func(name string) (string, bool) { return e.Get(PrefixDep + enc + "_" + name) }
	d := Dep{Service: service}
	target, ok := get("TARGET")
	if !ok {
		return d, fmt.Errorf("dependency %q: %s%s_TARGET is not set (is it in dependsOn/connectsTo?)", service, PrefixDep, enc)
	}
	d.Target = target
	port, ok := get("PORT")
	if !ok {
		return d, fmt.Errorf("dependency %q: %s%s_PORT is not set (does it have a port property?)", service, PrefixDep, enc)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return d, fmt.Errorf("dependency %q: %s%s_PORT=%q: expected a port number", service, PrefixDep, enc, port)
	}
	d.Port = n
	switch {
	case has(get, "HOST", &d.Host), has(get, "ADDRESS", &d.Host):
	default:
		if h := contextDepHost(e.Context, service, enc); h != "" {
			d.Host = h
		} else {
			d.Host = target
		}
	}
	return d, nil
}

func has(get func(string) (string, bool), name string, out *string) bool {
	v, ok := get(name)
	if ok {
		*out = v
	}
	return ok
}

// contextDepHost finds the host of a dependency's first location in the
// context document: dependsOn/connectsTo.<name>.targets[0].host.
func contextDepHost(ctx map[string]any, service, enc string) string {
	for _, key := range []string{"dependsOn", "connectsTo"} {
		deps, _ := ctx[key].(map[string]any)
		for name, v := range deps {
			if name != service && EnvName(name) != enc {
				continue
			}
			entry, _ := v.(map[string]any)
			targets, _ := entry["targets"].([]any)
			if len(targets) == 0 {
				continue
			}
			loc, _ := targets[0].(map[string]any)
			if h, ok := loc["host"].(string); ok && h != "" {
				return h
			}
		}
	}
	return ""
}

// Serve serves handler on addr until ctx is cancelled, then shuts down
// gracefully (in-flight requests get up to 5 seconds). ready, if not nil, is
// called with the bound address once the listener is open.
func Serve(ctx context.Context, addr string, handler http.Handler, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	return ServeListener(ctx, ln, handler)
}

// ServeListener serves handler on ln until ctx is cancelled, then shuts
// down gracefully (in-flight requests get up to 5 seconds, then their
// connections are closed).
func ServeListener(ctx context.Context, ln net.Listener, handler http.Handler) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// The grace period is over: what is left (a request still
		// running, a peer's connection that has not sent its request
		// on a loaded host) is cut, and the stop is still a normal one.
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Main runs a service: it loads the environment, runs run with a context
// cancelled by SIGTERM or SIGINT, and exits 0 after a clean stop or 1 with
// the error on stderr.
func Main(name string, run func(ctx context.Context, env *Env, logger *log.Logger) error) {
	logger := log.New(os.Stderr, name+": ", log.LstdFlags|log.Lmsgprefix)
	env, err := Load()
	if err != nil {
		logger.Fatal(err)
	}
	if env.Service != "" {
		logger.SetPrefix(env.Service + ": ")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, env, logger); err != nil {
		logger.Print(err)
		stop()
		os.Exit(1)
	}
	logger.Print("stopped")
}

// JSON writes v as a JSON response.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
