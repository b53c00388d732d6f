package adapt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/augment"
	"github.com/dydisnix/dydisnix/internal/cli"
	"github.com/dydisnix/dydisnix/model"
	"github.com/dydisnix/dydisnix/qos"
)

// TestAugmentedSecretsRedacted covers finding 7 of the trust review: a
// policy comparing an augmented secret property put the secret into the
// explanation, the errors, /status, the page and the logs. The secret
// here is marked in the augmentation rules ($secret: true) under a name
// that does not look secret; none of those outputs shows it.
func TestAugmentedSecretsRedacted(t *testing.T) {
	t.Parallel()
	const secret = "trust-7f3a9-not-for-eyes"
	rules, err := augment.ParseRules([]byte(`rules:
  - set:
      properties:
        dbCred: {$env: DB_CRED, $secret: true}
`), model.FormatYAML, "rules.yaml", augment.Options{LookupEnv: func(k string) (string, bool) { return secret, k == "DB_CRED" }})
	if err != nil {
		t.Fatal(err)
	}
	infra, err := rules.Apply(t.Context(), infraOf("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if infra["a"].Properties["dbCred"] != secret {
		t.Fatalf("augmented infrastructure: %v", infra["a"].Properties)
	}
	svcs, err := model.ServicesFromValue(map[string]any{"web": map[string]any{"name": "web", "requireCred": "guess"}}, "services.json")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := qos.ParsePolicy([]byte(`steps:
  - filter: mapAttrOnAttr
    serviceProperty: requireCred
    targetProperty: dbCred
`), model.FormatYAML, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := policy.Run(qos.Input{Services: svcs, Infrastructure: infra, Explain: true, Empty: qos.AllowEmpty})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	res.Explanation.WriteText(&text)
	js, _ := json.Marshal(res.Explanation)
	if !strings.Contains(text.String(), `dbCred "`+model.Redacted+`"`) {
		t.Errorf("the explanation does not show the comparison, redacted:\n%s", text.String())
	}

	// An error that carries the secret (as a planner's might) reaches the
	// status, the page and the log.
	var logs bytes.Buffer
	h := newHarness(t, func(c *Config) { c.Logger = (&cli.Log{}).Logger(&logs) })
	srv := h.l.Handler()
	h.snap(infraOf("a"))
	h.waitDeploy(5 * time.Second)
	h.planner.mu.Lock()
	h.planner.loadErr = fmt.Errorf("plan: target a: dbCred %q is not a list", secret)
	h.planner.mu.Unlock()
	h.advance(time.Hour) // the resync reloads the models
	h.settle()
	_, _, status := get(t, srv, "/status")
	_, _, page := get(t, srv, "/")
	_, _, live := get(t, srv, "/live")
	if !strings.Contains(live, "dbCred") || !strings.Contains(logs.String(), "dbCred") {
		t.Errorf("the page or the log does not show the error:\n%s\n%s", live, logs.String())
	}
	for what, out := range map[string]string{"explanation text": text.String(), "explanation JSON": string(js),
		"/status": status, "page": page, "live page": live, "log": logs.String()} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s shows the secret:\n%s", what, out)
		}
	}
}
