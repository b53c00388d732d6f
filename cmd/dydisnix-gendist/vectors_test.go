package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestCLIVectors runs every filter vector through the command line exactly
// as ../shared/tools/run-vectors.py does, in-process (the vectors are the
// copy in qos/testdata/vectors, so the test is self-contained).
func TestCLIVectors(t *testing.T) {
	filters := map[string]bool{
		"createCartesianProduct": true, "mapAttrOnList": true, "mapListOnAttr": true, "mapAttrOnAttr": true,
		"mapStatefulToPrevious": true, "mapBoundServicesToPrevious": true, "divideRoundRobin": true,
		"order": true, "divide": true, "minsetcover": true, "multiwaycut": true, "graphcol": true,
	}
	files, _ := filepath.Glob("../../qos/testdata/vectors/*.json")
	if len(files) == 0 {
		t.Fatal("no vectors in ../../qos/testdata/vectors")
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Filter     string         `json:"filter"`
			Args       map[string]any `json:"args"`
			Input      map[string]any `json:"input"`
			Expected   any            `json:"expected"`
			ExpectedIs string         `json:"expected_is"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if !filters[v.Filter] || v.ExpectedIs == "reference" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write := func(name string, val any) string {
				b, _ := json.Marshal(val)
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			dist, _ := v.Input["distribution"].(map[string]any)
			prev, _ := v.Input["previousDistribution"].(map[string]any)
			services, ok := v.Input["services"]
			if !ok || services == nil {
				s := map[string]any{}
				for k := range dist {
					s[k] = map[string]any{"name": k}
				}
				services = s
			}
			infra, ok := v.Input["infrastructure"]
			if !ok || infra == nil {
				i := map[string]any{}
				for _, d := range []map[string]any{dist, prev} {
					for _, l := range d {
						for _, m := range l.([]any) {
							name, isStr := m.(string)
							if !isStr {
								name = m.(map[string]any)["target"].(string)
							}
							i[name] = map[string]any{"properties": map[string]any{"hostname": name}}
						}
					}
				}
				infra = i
			}
			steps := []any{}
			if v.Filter != "createCartesianProduct" {
				step := map[string]any{"filter": v.Filter}
				for k, a := range v.Args {
					step[k] = a
				}
				steps = append(steps, step)
			}
			args := []string{"-s", write("services.json", services), "-i", write("infrastructure.json", infra),
				"-q", write("qos.json", map[string]any{"steps": steps}), "--format", "json"}
			if v.Input["distribution"] != nil && v.Filter != "createCartesianProduct" {
				args = append(args, "-d", write("distribution.json", v.Input["distribution"]))
			}
			if v.Input["previousDistribution"] != nil {
				args = append(args, "--previous", write("previous.json", v.Input["previousDistribution"]))
			}
			code, out, errs := gendistRun(t, args...)
			exp, _ := v.Expected.(map[string]any)
			if want, isErr := exp["error"].(string); isErr && len(exp) == 1 {
				if code != 1 || !strings.Contains(errs, want) {
					t.Fatalf("want exit 1 with %q, got %d: %s", want, code, errs)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var got any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, v.Expected) {
				t.Fatalf("got %s", out)
			}
		})
	}
	if n == 0 {
		t.Fatal("no filter vectors")
	}
}
