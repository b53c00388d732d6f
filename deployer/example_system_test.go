package deployer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/dydisnix/dydisnix/deployer"
	"github.com/dydisnix/dydisnix/internal/testenv"
	"github.com/dydisnix/dydisnix/model"
)

// buildExamplePrograms builds the testbed's example services (kvstore,
// webfront, peer, chord) with go build into a temporary directory.
func buildExamplePrograms(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../testbed/services/kvstore/main.go"); err != nil {
		t.Fatalf("the testbed's example services are missing: %v", err)
	}
	dir := t.TempDir()
	for _, p := range []string{"kvstore", "webfront", "peer", "chord"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, p), "../testbed/services/"+p).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", p, err, out)
		}
	}
	return dir
}

func exampleSvc(t *testing.T, bin, name, prog string, deps, conns []string, stateful bool) *model.Service {
	port := testenv.Port(t)
	s := &model.Service{Name: name, Type: "process", DependsOn: deps, ConnectsTo: conns,
		HasDependsOn: deps != nil, HasConnectsTo: conns != nil,
		Attrs: map[string]any{
			"pkg":         filepath.Join(bin, prog),
			"port":        json.Number(strconv.Itoa(port)),
			"bind":        "127.0.0.1",
			"healthCheck": fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
		}}
	if stateful {
		s.Attrs["deployState"] = true
	}
	return s
}

// TestExampleSystemOnAgents deploys the testbed's example system (stateful
// store, web front end, connectsTo pair, Chord ring) on three real agents,
// moves the store (state migrated, front end reactivated, nothing else
// touched) and checks the data through the front end.
func TestExampleSystemOnAgents(t *testing.T) {
	bin := buildExamplePrograms(t)
	c := newCluster(t, 3)
	svcs := model.Services{
		"kvstore":        exampleSvc(t, bin, "kvstore", "kvstore", nil, nil, true),
		"webfront":       exampleSvc(t, bin, "webfront", "webfront", []string{"kvstore"}, nil, false),
		"peerA":          exampleSvc(t, bin, "peerA", "peer", nil, []string{"peerB"}, false),
		"peerB":          exampleSvc(t, bin, "peerB", "peer", nil, []string{"peerA"}, false),
		"chordBootstrap": exampleSvc(t, bin, "chordBootstrap", "chord", nil, nil, false),
		"chordNode1":     exampleSvc(t, bin, "chordNode1", "chord", []string{"chordBootstrap"}, nil, false),
		"chordNode2":     exampleSvc(t, bin, "chordNode2", "chord", []string{"chordBootstrap"}, nil, false),
	}
	d := dist("kvstore", "t1", "webfront", "t2", "peerA", "t1", "peerB", "t3",
		"chordBootstrap", "t3", "chordNode1", "t1", "chordNode2", "t2")
	c.mustDeploy(svcs, d)
	httpPut(t, svcs["webfront"], "/kv/greeting", "hello")
	httpPut(t, svcs["webfront"], "/kv/answer", "42")
	sum, err := httpGet(t, svcs["webfront"], "/checksum")
	if err != nil {
		t.Fatal(err)
	}
	untouched := map[string]int{}
	for _, n := range []string{"peerA", "peerB", "chordBootstrap", "chordNode1", "chordNode2"} {
		untouched[n] = profilePid(t, c, n)
	}
	d2 := d.Clone()
	d2["kvstore"] = []model.Mapping{{Target: "t3"}}
	p := c.mustDeploy(svcs, d2)
	if got, want := countKind(p, deployer.StepActivate), map[string]int{"kvstore@t3": 1, "webfront@t2": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("activations = %v, want %v", got, want)
	}
	if s, err := httpGet(t, svcs["webfront"], "/checksum"); err != nil || s != sum {
		t.Fatalf("checksum through the front end after the move: %q %v, want %q", s, err, sum)
	}
	if v, _ := httpGet(t, svcs["webfront"], "/kv/answer"); v != "42" {
		t.Errorf("answer = %q after the move", v)
	}
	for n, pid := range untouched {
		if got := profilePid(t, c, n); got != pid {
			t.Errorf("%s restarted by an unrelated move (%d → %d)", n, pid, got)
		}
	}
}

// profilePid returns the pid the agents report for a service.
func profilePid(t *testing.T, c *cluster, name string) int {
	t.Helper()
	latest, _ := c.store.Latest()
	for _, tn := range latest.Targets() {
		cl, err := c.be.Client(tn, latest)
		if err != nil {
			t.Fatal(err)
		}
		prof, err := cl.Profile(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range prof.Services {
			if e.Service.Name == name {
				return e.Pid
			}
		}
	}
	t.Fatalf("%s not running anywhere", name)
	return 0
}
