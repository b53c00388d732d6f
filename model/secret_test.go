package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSecretName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"dbPassword": true, "mysql_passwd": true, "clientSecret": true, "apiToken": true, "API_KEY": true,
		"sshKey": true, "key": true, "tls.key": true, "credentials": true,
		"monkey": false, "keyboard": false, "hostname": false, "zone": false, "mem": false, "keys": false,
	} {
		if got := SecretName(name); got != want {
			t.Errorf("SecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestRedact: registered secrets (from AddSecret and from secret-named
// properties) are replaced in text, JSON-escaped text, errors, writers and
// HTTP answers; short values are not registered.
func TestRedact(t *testing.T) {
	t.Parallel()
	AddSecret(map[string]any{"a": []any{`redact-"quoted"-9d1`, json.Number("7771234599")}, "b": "abc"})
	AddSecretsOf(Infrastructure{"t": {Name: "t", Properties: map[string]any{"dbPassword": "redact-pw-9d1", "zone": "redact-zone-9d1"}}})
	in := `pw redact-pw-9d1 n 7771234599 q redact-"quoted"-9d1 j redact-\"quoted\"-9d1 zone redact-zone-9d1 short abc`
	want := `pw <redacted> n <redacted> q <redacted> j <redacted> zone redact-zone-9d1 short abc`
	if got := Redact(in); got != want {
		t.Errorf("Redact:\n got %s\nwant %s", got, want)
	}
	err := RedactError(&fs.PathError{Op: "open", Path: "redact-pw-9d1", Err: fs.ErrNotExist})
	var pe *fs.PathError
	if strings.Contains(err.Error(), "redact-pw-9d1") || !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RedactError: %v", err)
	}
	var buf bytes.Buffer
	RedactWriter(&buf).Write([]byte("log redact-pw-9d1\n"))
	if buf.String() != "log <redacted>\n" {
		t.Errorf("RedactWriter: %q", buf.String())
	}
	rec := httptest.NewRecorder()
	RedactHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("redact-"))
		w.Write([]byte("pw-9d1"))
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusTeapot || rec.Body.String() != "<redacted>" {
		t.Errorf("RedactHandler: %d %q", rec.Code, rec.Body.String())
	}
}
