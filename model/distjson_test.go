package model

import (
	"bytes"
	"testing"
)

// encodeGeneral is EncodeJSON the general way, for any value.
func encodeGeneral(t testing.TB, v any) []byte {
	t.Helper()
	val, err := ToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, val, "", true, false); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func TestEncodeDistributionJSONMatchesGeneral(t *testing.T) {
	t.Parallel()
	cases := map[string]Distribution{
		"empty":   {},
		"nil":     nil,
		"names":   {"b": {{Target: "t2"}, {Target: "t1"}}, "a": {{Target: "t1"}}},
		"no list": {"a": nil, "b": {}},
		"records": {"a": {{Target: "t1", Record: true}, {Target: "t2", Container: "c", Record: true}, {Target: "t3"}}},
		"escapes": {"a \"b\"\n": {{Target: "t\\1\x01"}, {Target: "é\xff", Container: "c\t", Record: true}}},
		"order":   {"Zeta": {{Target: "x"}}, "alpha": {{Target: "y"}}, "": {{Target: ""}}},
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := EncodeJSON(d)
			if err != nil {
				t.Fatal(err)
			}
			if want := encodeGeneral(t, d); !bytes.Equal(got, want) {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func FuzzEncodeDistributionJSON(f *testing.F) {
	f.Add("a", "t1", "", false, "b", "t2", "c", true)
	f.Add("", "", "", true, "\x00", "\xff", "\"", false)
	f.Fuzz(func(t *testing.T, s1, t1, c1 string, r1 bool, s2, t2, c2 string, r2 bool) {
		// a container without Record is ignored, as Disnix does
		m1 := Mapping{Target: t1, Container: c1, Record: r1}
		m2 := Mapping{Target: t2, Container: c2, Record: r2}
		d := Distribution{s1: {m1, m2}, s2: {m2}}
		if got, want := encodeDistributionJSON(d), encodeGeneral(t, d); !bytes.Equal(got, want) {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	})
}
