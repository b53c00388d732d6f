package discovery

import (
	"fmt"
	"testing"
	"time"
)

func benchTXT(b *testing.B) []string {
	tg := mustTarget(b, "machine1", map[string]any{
		"properties": map[string]any{"hostname": "machine1", "mem": "377648", "supportedTypes": []any{"process", "wrapper"}, "zone": "eu"},
		"containers": map[string]any{"mysql-database": map[string]any{"mysqlPort": "3306"}},
	})
	n, err := NormalizeTarget(tg)
	if err != nil {
		b.Fatal(err)
	}
	txt, _, err := EncodeTXT(n, EncodeOptions{Endpoint: "http://10.0.0.2:9001"})
	if err != nil {
		b.Fatal(err)
	}
	return txt
}

// BenchmarkParseTXT: reading one typical announcement (6 properties and
// container strings plus our keys) and checking its hash.
func BenchmarkParseTXT(b *testing.B) {
	txt := benchTXT(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ann, _, err := ParseTXT(txt, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := ann.Verify(ann.Target, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMembershipRound: one browse round's answers from 500 machines
// fed to the table, then Advance (the browser's per-round work).
func BenchmarkMembershipRound(b *testing.B) {
	m := NewMembership(MembershipConfig{})
	t0 := time.Unix(0, 0)
	obs := make([]Observation, 500)
	for i := range obs {
		obs[i] = Observation{Instance: fmt.Sprintf("disnix-m%d", i), TTL: 120 * time.Second}
		full := obs[i]
		full.Target = mustTarget(b, fmt.Sprintf("m%d", i), map[string]any{"properties": map[string]any{"hostname": fmt.Sprintf("m%d", i)}})
		full.Hash = "h"
		m.Put(full, t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		for _, o := range obs {
			m.Put(o, now)
		}
		m.Advance(now)
	}
}
