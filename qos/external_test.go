package qos

import (
	"github.com/dydisnix/dydisnix/internal/testenv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeScript(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "filter.sh")
	testenv.WriteExecutable(t, f, "#!/bin/sh\n"+body)
	return f
}

func TestExternalFilter(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	dir := t.TempDir()
	seen := filepath.Join(dir, "stdin.json")
	// keeps only t3 for every service, and records its input
	script := writeScript(t, `cat > `+seen+`
printf '{"cache": ["t3"], "db": ["t3"], "web": [{"target": "t3", "container": "c"}]}'
`)
	p := mustPolicy(t, "steps:\n- filter: external\n  command: ["+script+"]\n  timeout: 10s\n")
	res, err := p.Run(Input{Services: svcs, Infrastructure: infra, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	want := mustJSON(t, `{"cache": ["t3"], "db": ["t3"], "web": [{"target": "t3", "container": "c"}]}`)
	if got := asJSON(t, res.Distribution); !reflect.DeepEqual(got, asJSON(t, want)) {
		t.Fatalf("got %s", show(got))
	}
	in, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	v := mustJSON(t, string(in)).(map[string]any)
	for _, k := range []string{"services", "infrastructure", "distribution", "previousDistribution"} {
		if _, ok := v[k]; !ok {
			t.Errorf("input lacks %s", k)
		}
	}
	if v["previousDistribution"] != nil {
		t.Errorf("previousDistribution = %v, want null", v["previousDistribution"])
	}
	if r := res.Explanation.Services["cache"].Rejections; len(r) != 2 || !strings.Contains(r[0].Reason, "external") {
		t.Errorf("rejections %+v", r)
	}
}

func TestExternalFilterErrors(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	cases := []struct {
		name, step string
		want       []string
	}{
		{"exit status", `{filter: external, command: "echo boom >&2; exit 3"}`, []string{`external command "echo boom >&2; exit 3" failed`, "exit status 3", "boom"}},
		{"bad json", `{filter: external, command: "echo '{nope'"}`, []string{"output of external command", "invalid JSON"}},
		{"not a distribution", `{filter: external, command: "echo '[1]'"}`, []string{"distribution model"}},
		{"unknown service", `{filter: external, command: "echo '{\"zz\": []}'"}`, []string{"returned service zz"}},
		{"timeout", `{filter: external, command: "sleep 30", timeout: 0.2}`, []string{"timed out after 200ms"}},
		{"missing program", `{filter: external, command: [/nonexistent/filter]}`, []string{"/nonexistent/filter"}},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := mustPolicy(t, "steps: ["+c.step+"]").Run(Input{Services: svcs, Infrastructure: infra})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

func TestExternalMissingServiceEmpties(t *testing.T) {
	t.Parallel()
	svcs, infra := testModels(t)
	p := mustPolicy(t, `steps: [{filter: external, name: ext, command: "echo '{\"web\": [\"t1\"]}'"}]`)
	_, err := p.Run(Input{Services: svcs, Infrastructure: infra})
	if err == nil || !strings.Contains(err.Error(), "service cache has no candidate target left: step 1 (ext)") {
		t.Fatalf("got %v", err)
	}
}
