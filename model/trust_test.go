package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvalidUTF8AndSecondDocument covers finding 8 of the trust review:
// two targets whose names differ only in invalid UTF-8 bytes collapsed
// silently into one (both decoded to U+FFFD), and a second YAML document
// was ignored. Both are now errors naming the file and the place.
func TestInvalidUTF8AndSecondDocument(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, data, want string
	}{
		{"key", "infra.json", "{\"t\xff\": {\"properties\": {}}, \"t\xfe\": {\"properties\": {}}}", "infra.json: 1:4: invalid UTF-8"},
		{"value", "infra.json", "{\"t\": {\"properties\": {\n  \"hostname\": \"a\xc3\"}}}", "infra.json: 2:17: invalid UTF-8"},
		{"large services model", "services.json", "{\"a\": {\"name\": \"a\"},\n\"b\xff\": {\"name\": \"b\"}}", "services.json: 2:3: invalid UTF-8"},
		{"yaml key", "infra.yaml", "t\xff:\n  properties: {}\n", "infra.yaml"},
		{"second yaml document", "infra.yaml", "t1:\n  properties: {}\n---\nt2:\n  properties: {}\n", "infra.yaml: 3:1: a second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(file, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			if strings.HasPrefix(tc.file, "services") {
				_, err = LoadServices(file)
			} else {
				_, err = LoadInfrastructure(file)
			}
			if err == nil || !strings.Contains(err.Error(), filepath.Join(filepath.Dir(file), tc.want)) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
