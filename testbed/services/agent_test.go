package services

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/deployer/agent"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

const agentToken = "example-services-token"

// startAgents runs n real agents (in process) on loopback ports and returns
// the infrastructure that reaches them.
func startAgents(t *testing.T, n int) model.Infrastructure {
	t.Helper()
	infra := model.Infrastructure{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("t%d", i)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a, err := agent.New(agent.Config{StateDir: t.TempDir(), Token: []byte(agentToken), StopGrace: 5 * time.Second, StartTimeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: a.Handler()}
		done := make(chan struct{})
		go func() { srv.Serve(ln); close(done) }()
		t.Cleanup(func() {
			srv.Close()
			<-done
			a.Close(true)
		})
		infra[name] = &model.Target{Name: name, Extra: map[string]any{}, Properties: map[string]any{
			"agentURL": "http://" + ln.Addr().String(), "hostname": "127.0.0.1", "supportedTypes": []any{"process"},
		}}
	}
	return infra
}

func svcBase(s *model.Service) string {
	port, _ := model.ScalarText(s.Attrs["port"])
	return "http://127.0.0.1:" + port
}

// TestExampleSystemOnRealAgents deploys the whole example system with the
// real agent backend (the services get the agent's environment, not one
// made up by the test), writes through the front end, then moves the store
// and checks that the data followed it and the front end was reconnected.
func TestExampleSystemOnRealAgents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := WriteSystem(dir, binDir); err != nil {
		t.Fatal(err)
	}
	svcs, err := model.LoadServices(filepath.Join(dir, "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Free loopback ports instead of the defaults; bind to loopback only.
	for _, s := range svcs {
		s.Attrs["port"] = json.Number(strconv.Itoa(testenv.Port(t)))
		s.Attrs["bind"] = "127.0.0.1"
		s.Attrs["interval"] = "100ms"
	}
	infra := startAgents(t, 3)
	store, err := deployer.OpenStore(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	be := &deployer.AgentBackend{Token: agentToken, Parallel: 4, Store: store, TLS: &deployer.AgentTLS{InsecureHTTP: true}}
	deploy := func(d model.Distribution) *model.Manifest {
		t.Helper()
		man, err := deployer.BuildManifest(svcs, infra, d, deployer.BuildOptions{BaseDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		old, err := store.Latest()
		if err != nil {
			t.Fatal(err)
		}
		plan, err := deployer.PlanTransition(old, man, deployer.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := deployer.Deploy(ctx, be, store, plan, nil); err != nil {
			t.Fatalf("deploy:\n%s\n%v", plan, err)
		}
		return man
	}
	d := model.Distribution{}
	place := map[string]string{"kvstore": "t1", "webfront": "t2", "peerA": "t1", "peerB": "t2",
		"chordBootstrap": "t3", "chordNode1": "t1", "chordNode2": "t2", "chordNode3": "t3"}
	for s, tg := range place {
		d[s] = []model.Mapping{{Target: tg}}
	}
	deploy(d)

	web, kv := svcBase(svcs["webfront"]), svcBase(svcs["kvstore"])
	eventually(t, "webfront healthy", nil, healthy(web))
	want := map[string]string{}
	for i := 0; i < 20; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("value %d", i)
		if code := do(t, http.MethodPut, web+"/kv/"+k, v); code != http.StatusNoContent {
			t.Fatalf("PUT through webfront: %d", code)
		}
		want[k] = v
	}
	_, sum, _ := get(web + "/checksum")
	if strings.TrimSpace(sum) != checksum(want) {
		t.Fatalf("checksum %q, want %q", sum, checksum(want))
	}
	for _, p := range []struct{ svc, peer string }{{"peerA", "peerB"}, {"peerB", "peerA"}} {
		base := svcBase(svcs[p.svc])
		eventually(t, p.svc+" reaches "+p.peer, nil, func() (bool, string) {
			st, err := peerStat(base)
			return err == nil && st.Successes > 0 && st.PeerService == p.peer, fmt.Sprint(st, err)
		})
	}
	boot := svcBase(svcs["chordBootstrap"])
	eventually(t, "chord ring of 4", nil, func() (bool, string) {
		_, body, err := get(boot + "/ring")
		var r chordRing
		json.Unmarshal([]byte(body), &r)
		return err == nil && r.Complete && len(r.Nodes) == 4, body
	})

	// Move the store to t3: its state moves with it, webfront is reactivated.
	d["kvstore"] = []model.Mapping{{Target: "t3"}}
	deploy(d)
	eventually(t, "webfront healthy after the move", nil, healthy(web))
	var stats struct {
		Target   string `json:"target"`
		Keys     int    `json:"keys"`
		Checksum string `json:"checksum"`
	}
	_, body, _ := get(kv + "/stats")
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatalf("/stats: %v: %s", err, body)
	}
	if stats.Target != "t3" || stats.Checksum != checksum(want) || stats.Keys != len(want) {
		t.Errorf("after the move: %+v, want target t3, %d keys, checksum %s", stats, len(want), checksum(want))
	}
	if _, v, _ := get(web + "/kv/k7"); v != "value 7" {
		t.Errorf("GET k7 through webfront after the move = %q", v)
	}
}
