package qos

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

// TestExplainFailedStepChoosesNothing: when a step fails, the explanation
// says which step failed and that nothing was chosen.
func TestExplainFailedStepChoosesNothing(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte("steps:\n  - {filter: divide, strategy: greedy, serviceProperty: nosuch, targetProperty: mem}\n"), model.FormatYAML, "q.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(Input{
		Services:       model.Services{"a": {Name: "a", Attrs: map[string]any{}}},
		Infrastructure: model.Infrastructure{"t1": {Name: "t1", Properties: map[string]any{"mem": "10"}}},
		Explain:        true,
	})
	if err == nil || res == nil || res.Explanation == nil {
		t.Fatalf("want a failed run with an explanation, got %v, %v", res, err)
	}
	var b bytes.Buffer
	if err := res.Explanation.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "chosen: none (step 1 (divide) failed") {
		t.Fatalf("explanation:\n%s", b.String())
	}
}
