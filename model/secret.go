package model

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Secrets: values that must never be shown. A property is secret when the
// augmentation rules mark it ($secret: true on a value source, or a rule's
// secret list) or when its name says so (SecretName). Every secret value a
// process sees is registered (AddSecret; the augmentation and
// LoadInfrastructure do it) and Redact replaces it, wherever it appears,
// by Redacted: the explanations, errors, log lines (RedactWriter), the
// status page and its JSON (RedactHandler) go through it. Values shorter
// than MinSecretLen are not registered (redacting "1" everywhere would
// hide everything and protect nothing).

// Redacted replaces a secret value in any output.
const Redacted = "<redacted>"

// MinSecretLen is the length from which a secret value is redacted.
const MinSecretLen = 4

var secretNameRE = regexp.MustCompile(`(?i:passw(or)?d|secret|token|credential|apikey)|(^|[_.-])[Kk][Ee][Yy]$|[a-z0-9]Key$`)

// SecretName reports whether a property name marks its value as secret by
// itself: names containing password, passwd, secret, token, credential or
// apikey (in any case), and the names key, *Key, *_key, *-key and *.key.
func SecretName(name string) bool { return secretNameRE.MatchString(name) }

var secrets struct {
	sync.RWMutex
	values map[string]bool
	r      *strings.Replacer // nil: nothing registered
}

// AddSecret registers the values of v (a string, a number, or lists and
// attribute sets of them) as secret for the rest of the process.
func AddSecret(v any) {
	var vals []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			vals = append(vals, x)
		case json.Number:
			vals = append(vals, string(x))
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	secrets.Lock()
	defer secrets.Unlock()
	added := false
	for _, s := range vals {
		if len(s) >= MinSecretLen && !secrets.values[s] {
			if secrets.values == nil {
				secrets.values = map[string]bool{}
			}
			secrets.values[s] = true
			added = true
		}
	}
	if !added {
		return
	}
	// The longest first, so that a secret holding another is replaced whole;
	// each also in its JSON-escaped form (as in JSON output and JSON logs).
	all := make([]string, 0, len(secrets.values))
	for s := range secrets.values {
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) || len(all[i]) == len(all[j]) && all[i] < all[j] })
	var pairs []string
	for _, s := range all {
		pairs = append(pairs, s, Redacted)
		if b, err := json.Marshal(s); err == nil {
			if esc := string(b[1 : len(b)-1]); esc != s {
				pairs = append(pairs, esc, Redacted)
			}
		}
	}
	secrets.r = strings.NewReplacer(pairs...)
}

// AddSecretsOf registers the values of the secret-named properties
// (SecretName) of every target of infra, container properties included.
func AddSecretsOf(infra Infrastructure) {
	for _, t := range infra {
		if t == nil {
			continue
		}
		for k, v := range t.Properties {
			if SecretName(k) {
				AddSecret(v)
			}
		}
		for _, c := range t.Containers {
			for k, v := range c {
				if SecretName(k) {
					AddSecret(v)
				}
			}
		}
	}
}

// Redact returns s with every registered secret value replaced by Redacted.
func Redact(s string) string {
	secrets.RLock()
	r := secrets.r
	secrets.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// RedactWriter returns a writer that redacts every Write before passing it
// on to w. A secret is found within one Write: a logger writes each entry
// with one.
func RedactWriter(w io.Writer) io.Writer { return redactWriter{w} }

type redactWriter struct{ w io.Writer }

func (r redactWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RedactHandler serves h with every response body redacted (the body is
// gathered first, so that no secret is split between two writes).
func RedactHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &redactRecorder{header: w.Header(), code: http.StatusOK}
		h.ServeHTTP(rec, r)
		body := Redact(rec.body.String())
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.code)
		io.WriteString(w, body)
	})
}

type redactRecorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (r *redactRecorder) Header() http.Header         { return r.header }
func (r *redactRecorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *redactRecorder) WriteHeader(code int)        { r.code = code }

// RedactError returns err with its message redacted, or err itself when
// the message holds no secret; errors.Is and errors.As see through it.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Redact(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
