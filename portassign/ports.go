package portassign

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/dydisnix/dydisnix/model"
)

// DefaultPortServiceProperty is the service property that selects a port
// pool: "shared" (the global pool) or "private" (the pool of the service's
// first target).
const DefaultPortServiceProperty = "portAssign"

// The values of the port service property.
const (
	PortShared  = "shared"
	PortPrivate = "private"
)

// Pool is a port pool of the ports file.
type Pool struct {
	// LastPort is the port handed out most recently (the search cursor).
	LastPort int64
	// MinPort and MaxPort bound the pool, inclusive.
	MinPort, MaxPort int64
	// ServicesToPorts holds the reservations: service → port.
	ServicesToPorts map[string]int64
}

// DefaultGlobalPool is the shared pool created the first time a shared port
// is needed.
func DefaultGlobalPool() *Pool {
	return &Pool{LastPort: 3000, MinPort: 3000, MaxPort: 4000, ServicesToPorts: map[string]int64{}}
}

// DefaultTargetPool is the private pool created the first time a target
// needs a private port.
func DefaultTargetPool() *Pool {
	return &Pool{LastPort: 8000, MinPort: 8000, MaxPort: 9000, ServicesToPorts: map[string]int64{}}
}

func (p *Pool) clone() *Pool {
	if p == nil {
		return nil
	}
	c := *p
	c.ServicesToPorts = cloneInts(p.ServicesToPorts)
	return &c
}

func (p *Pool) value() map[string]any {
	return map[string]any{
		"lastPort":        num(p.LastPort),
		"minPort":         num(p.MinPort),
		"maxPort":         num(p.MaxPort),
		"servicesToPorts": intsValue(p.ServicesToPorts),
	}
}

func (p *Pool) nix(w *attrWriter, depth int, key string) {
	w.open(depth, key)
	w.int(depth+1, "lastPort", p.LastPort)
	w.int(depth+1, "minPort", p.MinPort)
	w.int(depth+1, "maxPort", p.MaxPort)
	w.intTable(depth+1, "servicesToPorts", p.ServicesToPorts)
	w.close(depth)
}

func num(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

// PortConfiguration is the persistent part of the ports file.
type PortConfiguration struct {
	// Global is the shared pool; nil until a shared port was ever needed.
	Global *Pool
	// Targets holds the private pool of each target.
	Targets map[string]*Pool
}

// Clone returns a deep copy.
func (c *PortConfiguration) Clone() *PortConfiguration {
	out := &PortConfiguration{Targets: map[string]*Pool{}}
	if c == nil {
		return out
	}
	out.Global = c.Global.clone()
	for t, p := range c.Targets {
		out.Targets[t] = p.clone()
	}
	return out
}

// Ports is the ports file: the assignment of this run and the configuration
// to read back next time.
type Ports struct {
	// Ports maps every shared or private service that got a port to it.
	Ports map[string]int64
	// Config is the pool configuration ("portConfiguration").
	Config *PortConfiguration
	// Warnings are messages for the user (services that were skipped).
	Warnings []string
}

// Value returns the JSON form {"ports": ..., "portConfiguration": ...}.
func (p *Ports) Value() map[string]any {
	conf := map[string]any{}
	if p.Config.Global != nil {
		conf["globalConfig"] = p.Config.Global.value()
	}
	targets := map[string]any{}
	for t, pool := range p.Config.Targets {
		targets[t] = pool.value()
	}
	conf["targetConfigs"] = targets
	return map[string]any{"ports": intsValue(p.Ports), "portConfiguration": conf}
}

// JSON returns the JSON form, indented, with a final newline.
func (p *Ports) JSON() []byte {
	b, _ := json.MarshalIndent(p.Value(), "", "  ")
	return append(b, '\n')
}

// Nix returns the ports file as Nix (dydisnix.md §1.10), in the layout of
// ids.nix: quoted keys, two-space indentation, sorted keys, pool attributes
// in the order lastPort, minPort, maxPort, servicesToPorts.
func (p *Ports) Nix() []byte {
	var w attrWriter
	w.b.WriteString("{\n")
	w.intTable(1, "ports", p.Ports)
	w.open(1, "portConfiguration")
	if p.Config.Global != nil {
		p.Config.Global.nix(&w, 2, "globalConfig")
	}
	w.open(2, "targetConfigs")
	for _, t := range model.SortedKeys(p.Config.Targets) {
		p.Config.Targets[t].nix(&w, 3, t)
	}
	w.close(2)
	w.close(1)
	w.b.WriteString("}")
	return []byte(w.b.String())
}

// ParsePortConfig reads the configuration of a ports file from its
// JSON-like value: the top-level "ports" key is ignored, "portConfiguration"
// holds "globalConfig" and "targetConfigs". A pool attribute that is missing
// takes the default pool's value.
func ParsePortConfig(v any, file string) (*PortConfiguration, error) {
	out := &PortConfiguration{Targets: map[string]*Pool{}}
	if v == nil {
		return out, nil
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fileErr(file, "", "ports file: expected an attribute set {ports, portConfiguration}, got %s", model.TypeName(v))
	}
	for _, k := range model.SortedKeys(top) {
		if k != "ports" && k != "portConfiguration" {
			return nil, fileErr(file, k, "unknown section: expected ports or portConfiguration")
		}
	}
	conf, err := attrsOf(top["portConfiguration"], file, "portConfiguration", "an attribute set {globalConfig, targetConfigs}")
	if err != nil {
		return nil, err
	}
	for _, k := range model.SortedKeys(conf) {
		switch k {
		case "globalConfig":
			if conf[k] == nil {
				continue
			}
			p, err := parsePool(conf[k], DefaultGlobalPool(), file, "portConfiguration.globalConfig")
			if err != nil {
				return nil, err
			}
			out.Global = p
		case "targetConfigs":
			ts, err := attrsOf(conf[k], file, "portConfiguration.targetConfigs", "an attribute set of target pools")
			if err != nil {
				return nil, err
			}
			for _, t := range model.SortedKeys(ts) {
				p, err := parsePool(ts[t], DefaultTargetPool(), file, "portConfiguration.targetConfigs."+t)
				if err != nil {
					return nil, err
				}
				out.Targets[t] = p
			}
		default:
			return nil, fileErr(file, "portConfiguration."+k, "unknown attribute: expected globalConfig or targetConfigs")
		}
	}
	return out, nil
}

func parsePool(v any, def *Pool, file, place string) (*Pool, error) {
	m, err := attrsOf(v, file, place, "a pool {lastPort, minPort, maxPort, servicesToPorts}")
	if err != nil {
		return nil, err
	}
	p := def
	for _, k := range model.SortedKeys(m) {
		switch k {
		case "lastPort", "minPort", "maxPort":
			n, err := intOf(m[k], false)
			if err != nil {
				return nil, fileErr(file, place+"."+k, "%v", err)
			}
			switch k {
			case "lastPort":
				p.LastPort = n
			case "minPort":
				p.MinPort = n
			case "maxPort":
				p.MaxPort = n
			}
		case "servicesToPorts":
			t, err := intTable(m[k], file, place+"."+k)
			if err != nil {
				return nil, err
			}
			p.ServicesToPorts = t
		default:
			return nil, fileErr(file, place+"."+k, "unknown pool attribute: expected lastPort, minPort, maxPort or servicesToPorts")
		}
	}
	if p.MinPort > p.MaxPort {
		return nil, fileErr(file, place, "minPort %d is greater than maxPort %d", p.MinPort, p.MaxPort)
	}
	return p, nil
}

// PortRequest is the input of AssignPorts.
type PortRequest struct {
	// Services is the services model.
	Services model.Services
	// Distribution is the distribution model.
	Distribution model.Distribution
	// Previous is the configuration read from the old ports file (nil: none).
	Previous *PortConfiguration
	// ServiceProperty names the property that selects the pool; ""
	// means DefaultPortServiceProperty.
	ServiceProperty string
}

// PoolExhaustedError reports that a pool has no port left for a service.
type PoolExhaustedError struct {
	Pool     string // "global" or "target <name>"
	Service  string
	Min, Max int64
	Taken    int
	HeldBack int
}

// Error implements error.
func (e *PoolExhaustedError) Error() string {
	held := ""
	if e.HeldBack > 0 {
		held = fmt.Sprintf(", %d released in this run and held back for one generation", e.HeldBack)
	}
	return fmt.Sprintf("port pool of %s exhausted: no free port in %d..%d for service %s: %d taken%s",
		e.Pool, e.Min, e.Max, e.Service, e.Taken, held)
}

// AssignPorts computes the new ports file, following the legacy
// dydisnix-port-assign (dydisnix.md §3.6) with the deviations documented
// in docs/portassign.md: services are visited in sorted order; every
// reservation (also those read from the file) counts as taken, so a
// wrap-around never produces a duplicate; a shared port is unique among all
// pools and a private port never equals a shared one; a port released in
// this run is not handed to another service in the same run; an exhausted
// pool is an error instead of an endless search. The input is never
// modified.
func AssignPorts(req PortRequest) (*Ports, error) {
	prop := req.ServiceProperty
	if prop == "" {
		prop = DefaultPortServiceProperty
	}
	conf := req.Previous.Clone()
	dist := req.Distribution
	kind := func(svc string) string {
		s, ok := req.Services[svc]
		if !ok {
			return ""
		}
		v, _ := s.Attr(prop)
		k, _ := v.(string)
		return k
	}
	distributed := func(svc string) bool { _, ok := dist[svc]; return ok }
	held := map[int64]bool{}
	release := func(p *Pool, want string) {
		for _, svc := range model.SortedKeys(p.ServicesToPorts) {
			if !distributed(svc) || kind(svc) != want {
				held[p.ServicesToPorts[svc]] = true
				delete(p.ServicesToPorts, svc)
			}
		}
	}
	// 1. Clean.
	if conf.Global != nil {
		release(conf.Global, PortShared)
	}
	hosts := map[string]bool{}
	for _, svc := range dist.Names() {
		for _, t := range dist.Targets(svc) {
			hosts[t] = true
		}
	}
	for _, t := range model.SortedKeys(conf.Targets) {
		p := conf.Targets[t]
		if !hosts[t] {
			for _, port := range p.ServicesToPorts {
				held[port] = true
			}
			delete(conf.Targets, t)
			continue
		}
		release(p, PortPrivate)
	}
	// Drop duplicates a previous file may hold (the reference could write
	// them after a wrap-around): the first service in sorted order keeps
	// the port, the others get a new one below.
	dedupe := func(p *Pool, global map[int64]bool) map[int64]bool {
		seen := map[int64]bool{}
		for _, svc := range model.SortedKeys(p.ServicesToPorts) {
			port := p.ServicesToPorts[svc]
			if seen[port] || global[port] {
				delete(p.ServicesToPorts, svc)
				continue
			}
			seen[port] = true
		}
		return seen
	}
	var globalTaken map[int64]bool
	if conf.Global != nil {
		globalTaken = dedupe(conf.Global, nil)
	}
	for _, t := range model.SortedKeys(conf.Targets) {
		dedupe(conf.Targets[t], globalTaken)
	}

	// 2. Assign. The taken ports are indexed once and kept up to date:
	// a shared port must be free in every pool, a private port in its own
	// pool and among the shared ones.
	idx := newPortIndex(conf)
	out := &Ports{Ports: map[string]int64{}, Config: conf}
	for _, svc := range dist.Names() {
		var pool *Pool
		var name string
		switch kind(svc) {
		case PortShared:
			if conf.Global == nil {
				conf.Global = DefaultGlobalPool()
			}
			pool, name = conf.Global, "global"
		case PortPrivate:
			ts := dist.Targets(svc)
			if len(ts) == 0 {
				out.Warnings = append(out.Warnings, fmt.Sprintf("WARNING: %s is not distributed to any machine. Skipping port assignment...", svc))
				continue
			}
			t := ts[0]
			if conf.Targets[t] == nil {
				conf.Targets[t] = DefaultTargetPool()
			}
			pool, name = conf.Targets[t], "target "+t
		default:
			continue
		}
		if port, ok := pool.ServicesToPorts[svc]; ok {
			out.Ports[svc] = port
			continue
		}
		shared := pool == conf.Global
		taken := func(port int64) bool {
			if shared {
				return idx.all[port] > 0
			}
			return idx.global[port] || idx.pools[pool][port]
		}
		port, err := nextPort(pool, taken, held, len(idx.all)+len(held))
		if err != nil {
			n := 0
			inRange := func(p int64) bool { return p >= pool.MinPort && p <= pool.MaxPort }
			for p := range idx.all {
				if inRange(p) && (shared || idx.global[p] || idx.pools[pool][p]) {
					n++
				}
			}
			return nil, &PoolExhaustedError{Pool: name, Service: svc, Min: pool.MinPort, Max: pool.MaxPort, Taken: n, HeldBack: len(held)}
		}
		pool.ServicesToPorts[svc] = port
		pool.LastPort = port
		idx.add(pool, port, shared)
		out.Ports[svc] = port
	}
	return out, nil
}

// portIndex indexes the reserved ports of a configuration.
type portIndex struct {
	all    map[int64]int // port → number of reservations in any pool
	global map[int64]bool
	pools  map[*Pool]map[int64]bool
}

func newPortIndex(conf *PortConfiguration) *portIndex {
	idx := &portIndex{all: map[int64]int{}, global: map[int64]bool{}, pools: map[*Pool]map[int64]bool{}}
	if conf.Global != nil {
		for _, port := range conf.Global.ServicesToPorts {
			idx.add(conf.Global, port, true)
		}
	}
	for _, p := range conf.Targets {
		for _, port := range p.ServicesToPorts {
			idx.add(p, port, false)
		}
	}
	return idx
}

func (idx *portIndex) add(p *Pool, port int64, shared bool) {
	idx.all[port]++
	if shared {
		idx.global[port] = true
	}
	if idx.pools[p] == nil {
		idx.pools[p] = map[int64]bool{}
	}
	idx.pools[p][port] = true
}

// nextPort searches from lastPort+1, wrapping to minPort past maxPort, for
// a port that is neither taken nor held back; it visits every port of the
// pool at most once, and gives up early once it has seen more candidates
// than there can be blocked ports (blocked bounds their number).
func nextPort(p *Pool, taken func(int64) bool, held map[int64]bool, blocked int) (int64, error) {
	port := p.LastPort
	size := uint64(p.MaxPort-p.MinPort) + 1
	if size == 0 { // the whole int64 range
		size = ^uint64(0)
	}
	for i := uint64(0); i < size && i <= uint64(blocked); i++ {
		if port >= p.MaxPort || port < p.MinPort {
			port = p.MinPort
		} else {
			port++
		}
		if !taken(port) && !held[port] {
			return port, nil
		}
	}
	return 0, fmt.Errorf("exhausted")
}
