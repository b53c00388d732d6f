package augment

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func FuzzParseRules(f *testing.F) {
	seeds := []string{
		`rules: [{set: {properties: {augment: augment}}}]`,
		"rules:\n  - match: {targets: [\"test*\", \"db?\"], exclude: test2, containers: [mysql-database]}\n    set: {properties: {x: 1}}\n",
		"rules:\n  - match: {properties: {mem: 2048, zone: {in: [eu]}, hostname: {glob: \"t*\"}, tags: {contains: ssd}, a: {exists: false}, b: {not: 1}}}\n    merge: {properties: {labels: {b: {d: 3}}}}\n    remove: {properties: [zone], containers: [x], containerProperties: {c: [k]}, attributes: [system]}\n",
		`{"rules": [{"set": {"properties": {"pw": {"$env": "DB_PASSWORD"}, "n": {"$env": "MEM", "$as": "int"}, "f": {"$file": "pw.txt"}, "l": {"$value": {"$env": 1}}}, "containers": {"c": {"k": [1, {"$env": "FLAG", "$as": "bool"}]}}, "attributes": {"system": "x"}}}]}`,
		`{"version": 1, "rules": []}`,
		"rules: [{merge: {containers: {mysql-database: {a: {b: 1}}}}}]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []model.Format{model.FormatJSON, model.FormatYAML} {
			rs, err := ParseRules(data, format, "/etc/aug/rules.yaml", testOptions())
			if err != nil {
				continue
			}
			in := testInfra(t)
			before, _ := json.Marshal(in)
			out, err := rs.Apply(context.Background(), in)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if after, _ := json.Marshal(in); string(after) != string(before) {
				t.Fatal("Apply modified its input")
			}
			if len(out) != len(in) {
				t.Fatalf("Apply changed the set of targets")
			}
			if _, err := json.Marshal(out); err != nil {
				t.Fatalf("result cannot be written: %v", err)
			}
		}
	})
}
