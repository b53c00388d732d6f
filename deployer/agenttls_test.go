package deployer_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/fleettls"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// TestAgentTLSNames: Client reaches only an agent whose certificate the
// fleet CA signed for the target's hostname; FleetClient (discovery's
// probes, no credential) any agent of the fleet, none of another CA.
func TestAgentTLSNames(t *testing.T) {
	fleet := testenv.NewFleet(t, "machine1", "attacker")
	other := testenv.NewFleet(t, "machine1")
	coord := fleet.CoordinatorArgs()
	cfg, err := fleettls.ClientConfig(coord[1], coord[3], coord[5])
	if err != nil {
		t.Fatal(err)
	}
	agents := &deployer.AgentTLS{Config: cfg}
	target := &model.Target{Name: "m1", Properties: map[string]any{"hostname": "machine1"}}
	for _, tc := range []struct {
		name            string
		fleet           testenv.Fleet
		cert            string
		client, fleetOK bool
	}{
		{"the target's certificate", fleet, "machine1", true, true},
		{"a fleet certificate of another host", fleet, "attacker", false, true},
		{"another CA's certificate of the hostname", other, "machine1", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.fleet.AgentArgs(tc.cert)
			cert, err := tls.LoadX509KeyPair(args[1], args[3])
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			srv.StartTLS()
			defer srv.Close()
			hc, err := agents.Client(target, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			_, err = hc.Get(srv.URL + "/v1/health")
			if (err == nil) != tc.client {
				t.Errorf("Client: %v, want success %v", err, tc.client)
			}
			_, err = agents.FleetClient(time.Minute).Get(srv.URL + "/v1/target")
			if (err == nil) != tc.fleetOK {
				t.Errorf("FleetClient: %v, want success %v", err, tc.fleetOK)
			}
			// Discovery's probes of the target go out with its agent's
			// client (one kept connection), and check its name as well.
			pc := agents.ProbeClient(target, srv.URL)
			if pc != hc {
				t.Fatal("ProbeClient is not the target's Client")
			}
			_, err = pc.Head(srv.URL + "/v1/target")
			if (err == nil) != tc.client {
				t.Errorf("ProbeClient: %v, want success %v", err, tc.client)
			}
		})
	}
	// Where Client refuses (plain HTTP without InsecureHTTP), or without
	// a target, discovery probes with its own client.
	if c := agents.ProbeClient(target, "http://127.0.0.1:1"); c != nil {
		t.Error("ProbeClient of a plain-HTTP agent without InsecureHTTP is not nil")
	}
	if c := agents.ProbeClient(nil, "https://127.0.0.1:1"); c != nil {
		t.Error("ProbeClient without a target is not nil")
	}
}

// TestProbeClientsBounded: ProbeClient makes a client per announced
// hostname, as Client does, but stops at maxProbeClients kept, so
// announcements cannot grow them without bound; Client still makes one.
func TestProbeClientsBounded(t *testing.T) {
	agents := &deployer.AgentTLS{Config: &tls.Config{}}
	for i := range deployer.MaxProbeClients {
		tg := &model.Target{Name: fmt.Sprint("h", i)}
		if agents.ProbeClient(tg, "https://127.0.0.1:1") == nil {
			t.Fatalf("no client for the %d-th hostname", i+1)
		}
	}
	one := &model.Target{Name: "one-more"}
	if agents.ProbeClient(one, "https://127.0.0.1:1") != nil {
		t.Errorf("ProbeClient made client %d", deployer.MaxProbeClients+1)
	}
	c, err := agents.Client(one, "https://127.0.0.1:1")
	if err != nil || c == nil {
		t.Fatalf("Client = %v, %v", c, err)
	}
	if agents.ProbeClient(one, "https://127.0.0.1:1") != c {
		t.Error("ProbeClient does not return the client Client made")
	}
}
