package ctl

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/adapt"
	"github.com/dydisnix/dydisnix/model"
)

func TestPrintStatus(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	retry := t0.Add(time.Minute)
	st := &adapt.Status{
		Phase:   "deploying",
		Running: &adapt.RunningStep{Step: 3, Of: 7, Op: "activate", Service: "web", Target: "b", Since: t0},
		LastDeploy: &adapt.DeployReport{Seq: 2, Result: "failure", Error: "step 2 failed", Finished: t0,
			DetectionMs: 150, RedeployMs: 900, Plan: []string{"1", "2"}, Moved: []string{"db"}},
		RetryAt:     &retry,
		ModelsError: "services.nix: syntax error",
		Targets: []adapt.MemberStatus{{Target: "a", State: adapt.MemberUp, Since: t0, Drained: true, Cordoned: true},
			{Target: "b", State: adapt.MemberUp, Since: t0, Cordoned: true}, {Target: "c", State: adapt.MemberDown, Since: t0, Reason: "goodbye"}},
		Distribution: model.Distribution{"web": {{Target: "b"}, {Target: "c"}}},
	}
	var b bytes.Buffer
	if err := PrintStatus(&b, st, t0.Add(12*time.Second)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"phase:         deploying\n",
		"running:       [3/7] activate web on b (for 12s)\n",
		"last deploy:   #2 failure at 2026-01-02T03:04:05Z (detection 150 ms, redeploy 900 ms, 2 steps)\n",
		"moved:         db\n",
		"deploy error:  step 2 failed\n",
		"retry at:      2026-01-02T03:05:05Z\n",
		"models error:  services.nix: syntax error\n",
		"a       up     2026-01-02T03:04:05Z  drained",
		"b       up     2026-01-02T03:04:05Z  cordoned",
		"c       down   2026-01-02T03:04:05Z  -         goodbye",
		"web      b, c\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
