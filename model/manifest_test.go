package model

import (
	"strings"
	"testing"
)

const sampleManifest = `{
  "version": 1,
  "generation": 3,
  "services": {
    "k1": {"name": "db", "type": "process", "artifact": "sha256:00", "properties": {"port": 5432}, "deployState": true, "dependsOn": [], "connectsTo": []},
    "k2": {"name": "web", "type": "process", "dependsOn": [{"service": "k1", "target": "t1", "container": "process"}], "connectsTo": []}
  },
  "serviceMappings": [
    {"service": "k2", "target": "t2", "container": "process"},
    {"service": "k1", "target": "t1", "container": "process"}
  ],
  "snapshotMappings": [{"service": "k1", "target": "t1", "container": "process"}],
  "infrastructure": {"t1": {"properties": {"agentURL": "http://a:1"}}, "t2": {"properties": {"hostname": "b"}}}
}`

func TestManifestRoundTrip(t *testing.T) {
	m, err := UnmarshalManifest([]byte(sampleManifest), "m.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 3 || len(m.Mappings) != 2 || m.Mappings[0].Target != "t1" {
		t.Fatalf("mappings not sorted by target: %+v", m.Mappings)
	}
	if got := m.Targets(); len(got) != 2 || got[0] != "t1" {
		t.Errorf("Targets = %v", got)
	}
	b, err := MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalManifest(b, "again.json")
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equivalent(m) {
		t.Error("round trip changed the manifest")
	}
	if back.Services["k1"].Key() != m.Services["k1"].Key() {
		t.Error("round trip changed a key")
	}
	file := t.TempDir() + "/m.json"
	if err := WriteManifest(file, m); err != nil {
		t.Fatal(err)
	}
	if r, err := ReadManifest(file); err != nil || !r.Equivalent(m) {
		t.Fatalf("read back: %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"version": 2}`, "version 2"},
		{`{"version": 1, "serviceMappings": [{"service": "x", "target": "t"}]}`, "service key x"},
		{`{"version": 1, "services": {"a": {"name": "a", "dependsOn": [{"service": "zz"}]}}}`, "dependsOn key zz"},
		{`{"version": 1, "services": {"a": {"type": "x"}}}`, "no name"},
		{`[1]`, "m.json"},
		{`{"version": 1, "infrastructure": [1]}`, "infrastructure"},
	} {
		_, err := UnmarshalManifest([]byte(tc.in), "m.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestServiceKeyMerkle(t *testing.T) {
	a := ManifestService{Name: "a", Type: "process", Artifact: "sha256:1"}
	b := ManifestService{Name: "b", Type: "process", DependsOn: []ServiceMapping{{Service: a.Key(), Target: "t1", Container: "process"}}}
	k := b.Key()
	b.ConnectsTo = []ServiceMapping{{Service: "x", Target: "t9"}}
	if b.Key() != k {
		t.Error("connectsTo changed the key")
	}
	b.DependsOn[0].Target = "t2"
	if b.Key() == k {
		t.Error("a moved dependency kept the key")
	}
	a.Artifact = "sha256:2"
	b.DependsOn[0] = ServiceMapping{Service: a.Key(), Target: "t1", Container: "process"}
	if b.Key() == k {
		t.Error("a changed dependency kept the key")
	}
}

func FuzzUnmarshalManifest(f *testing.F) {
	f.Add([]byte(sampleManifest))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"serviceMappings":[{"service":"x","target":"t"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := UnmarshalManifest(data, "fuzz.json")
		if err != nil {
			return
		}
		out, err := MarshalManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalManifest(out, "again.json")
		if err != nil {
			t.Fatalf("re-read of a written manifest failed: %v\n%s", err, out)
		}
		if !back.Equivalent(m) {
			t.Fatalf("round trip differs")
		}
	})
}

func TestKeyIgnoresEmptyVersusAbsent(t *testing.T) {
	a := ManifestService{Name: "a", Type: "process"}
	b := ManifestService{Name: "a", Type: "process", Properties: map[string]any{}, Args: []string{}, DependsOn: []ServiceMapping{}}
	if a.Key() != b.Key() {
		t.Error("empty and absent collections hash differently")
	}
	m := &Manifest{Version: 1, Services: map[string]ManifestService{b.Key(): b}, Mappings: []ServiceMapping{{Service: b.Key(), Target: "t"}}}
	data, _ := MarshalManifest(m)
	back, err := UnmarshalManifest(data, "m.json")
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range back.Services {
		if s.Key() != k {
			t.Error("key changed by a round trip")
		}
	}
}
