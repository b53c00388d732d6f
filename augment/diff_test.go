package augment

import (
	"context"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func TestDiff(t *testing.T) {
	t.Parallel()
	rs, err := ParseRules([]byte(`rules:
  - match: {target: test1}
    set: {properties: {dbPassword: {$env: DB_PASSWORD}, zone: us}, containers: {mysql-database: {mysqlPort: 3306}}}
    remove: {attributes: [system]}
  - match: {target: test2}
    merge: {properties: {labels: {b: {d: 1}}}}
`), model.FormatYAML, "/etc/aug/rules.yaml", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	in := testInfra(t)
	out, _ := rs.Apply(context.Background(), in)
	in["gone"] = &model.Target{Name: "gone"}
	var lines []string
	for _, c := range Diff(in, out) {
		lines = append(lines, c.String())
	}
	got := strings.Join(lines, "\n")
	want := "gone: - (whole target)\n" +
		"test1: + properties.dbPassword\n" +
		"test1: ~ properties.zone\n" +
		"test1: - system\n" +
		"test2: + properties.labels.b.d"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "hunter2") {
		t.Fatal("diff shows a secret")
	}
}
