package augment

import (
	"context"
	"fmt"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

func benchInfra(n int) model.Infrastructure {
	inf := model.Infrastructure{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("t%03d", i)
		t := &model.Target{Name: name, Properties: map[string]any{"hostname": name, "zone": []string{"eu", "us"}[i%2], "mem": "2048"}, Extra: map[string]any{}}
		if i%3 == 0 {
			t.Containers = map[string]map[string]any{"mysql-database": {"mysqlPort": "3306"}}
		}
		inf[name] = t
	}
	return inf
}

func BenchmarkRulesApply(b *testing.B) {
	rs, err := ParseRules([]byte(`rules:
  - match: {container: mysql-database, properties: {zone: eu}}
    set: {containers: {mysql-database: {mysqlPassword: {$env: DB_PASSWORD}}}}
  - match: {targets: "t1*"}
    merge: {properties: {labels: {tier: front}}}
  - set: {properties: {site: {$file: /etc/aug/pw.txt}}}
`), model.FormatYAML, "/etc/aug/rules.yaml", testOptions())
	if err != nil {
		b.Fatal(err)
	}
	benchApply(b, rs)
}

// benchApply measures a.Apply on 500 targets.
func benchApply(b *testing.B, a Augmenter) {
	inf := benchInfra(500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Apply(context.Background(), inf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNixApply(b *testing.B) {
	a, err := Load("testdata/augment.nix", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchApply(b, a)
}
