package deployer_test

import (
	"crypto/tls"
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
	// ProbeClient makes no client: an announced hostname the coordinator
	// has not reached gets none (discovery probes with its own client);
	// neither does one where Client refuses (plain HTTP without
	// InsecureHTTP), nor a probe without a target.
	stranger := &model.Target{Name: "s", Properties: map[string]any{"hostname": "stranger"}}
	if c := agents.ProbeClient(stranger, "https://127.0.0.1:1"); c != nil {
		t.Error("ProbeClient made a client for an announced hostname")
	}
	if c := agents.ProbeClient(target, "http://127.0.0.1:1"); c != nil {
		t.Error("ProbeClient of a plain-HTTP agent without InsecureHTTP is not nil")
	}
	if c := agents.ProbeClient(nil, "https://127.0.0.1:1"); c != nil {
		t.Error("ProbeClient without a target is not nil")
	}
}
