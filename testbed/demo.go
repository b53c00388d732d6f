package testbed

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
)

// DemoConfig configures RunDemo.
type DemoConfig struct {
	// Dir holds the demo's files (models, coordinator state, logs).
	Dir string
	// BinDir holds the dydisnix commands and the example services.
	BinDir string
	// Progress receives the human-readable story; nil discards it.
	Progress io.Writer
	// Machines is the number of machines at the start (default 4).
	Machines int
	// Status, when set, is a listener in the host's network namespace
	// forwarded to the loop's status page.
	Status net.Listener
	// KeepRunning keeps the machines and the loop running after the story
	// until ctx ends.
	KeepRunning bool
}

// demoService is one service of the example system.
type demoService struct {
	name, bin  string
	port       int
	dependsOn  []string
	connectsTo []string
	stateful   bool
}

// The example system: a stateful store and a web front end on it, a
// connectsTo pair, and a Chord-style ring. Every machine is a namespace of
// its own, so fixed ports never collide.
var demoServices = []demoService{
	{"kvstore", "kvstore", 7001, nil, nil, true},
	{"webfront", "webfront", 7002, []string{"kvstore"}, nil, false},
	{"peerA", "peer", 7003, nil, []string{"peerB"}, false},
	{"peerB", "peer", 7004, nil, []string{"peerA"}, false},
	{"chord-bootstrap", "chord", 7005, nil, nil, false},
	{"chord-node1", "chord", 7006, []string{"chord-bootstrap"}, nil, false},
	{"chord-node2", "chord", 7007, []string{"chord-bootstrap"}, nil, false},
}

// DemoServiceNames lists the example system's services.
func DemoServiceNames() []string {
	out := make([]string, len(demoServices))
	for i, s := range demoServices {
		out[i] = s.name
	}
	return out
}

// DemoServicesModel returns the example system as a services model (JSON
// form) whose packages are the example binaries in binDir.
func DemoServicesModel(binDir string) map[string]any { return servicesModel(binDir, demoServices) }

// servicesModel renders services as a services model (JSON form) whose
// packages are the example binaries in binDir.
func servicesModel(binDir string, services []demoService) map[string]any {
	m := map[string]any{}
	for _, s := range services {
		svc := map[string]any{
			"name":        s.name,
			"type":        "process",
			"pkg":         filepath.Join(binDir, "examples", s.bin),
			"port":        s.port,
			"healthCheck": fmt.Sprintf("http://127.0.0.1:%d/healthz", s.port),
		}
		if s.dependsOn != nil {
			svc["dependsOn"] = s.dependsOn
		}
		if s.connectsTo != nil {
			svc["connectsTo"] = s.connectsTo
		}
		if s.stateful {
			svc["stateful"] = true
			svc["deployState"] = true
		}
		m[s.name] = svc
	}
	return m
}

// DemoPolicy is the demo's QoS policy: only machines that support the
// service's type; a service stays where it ran while that machine is still
// a candidate (so a change moves as little as possible); what has to move,
// or is new, goes to the candidate hosting the fewest services, so the
// services of a machine that vanished spread over the survivors.
const DemoPolicy = `steps:
  - filter: mapAttrOnList
    serviceProperty: type
    targetPropertyList: supportedTypes
  - filter: preferPrevious
  - filter: divideLeastLoaded
`
