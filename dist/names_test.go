package dist_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The file names the units, the NixOS module, the README and the docs
// share: the agents' token (a systemd credential of the same name) and the
// machine's properties.
const (
	credentialName = "agent.token"
	tokenPath      = "/etc/dydisnix/" + credentialName
	propertiesPath = "/etc/dydisnix/properties.yaml"
	tlsDir         = "/etc/dydisnix/tls/"
)

// documents name the files where an operator reads these names.
var documents = []string{"README.md", "docs/adapt.md", "docs/deployer.md", "docs/discovery.md"}

var (
	etcPath     = regexp.MustCompile("/etc/dydisnix/[^\\s`'\")\\]]+")
	oldTokenRef = regexp.MustCompile(`agent-token\b(?:[^-]|$)|properties\.json`)
	credRef     = regexp.MustCompile(`\$\{CREDENTIALS_DIRECTORY\}/(\S+)`)
	propsFlag   = regexp.MustCompile(`--properties[ =](\S+)`)
	// tlsCredential is a unit's fleet CA, certificate or key (dydisnix-tls).
	tlsCredential = regexp.MustCompile(`^tls-(ca|cert|key):` + regexp.QuoteMeta(tlsDir) + `(ca|agent|agent-key|coordinator|coordinator-key)\.pem$`)
)

// TestFileNamesAgree checks that the units load the token credential from
// the file the README and docs tell the operator to write, that the
// commands read the credential under the name it is loaded as, and that
// every token or properties file named anywhere is the same one. (The
// units once loaded agent-token and properties.json while the README said
// agent.token and properties.yaml, so they failed at LoadCredential.)
func TestFileNamesAgree(t *testing.T) {
	t.Parallel()
	for name, u := range units(t) {
		loaded := map[string]bool{}
		for _, lc := range u["Service"]["LoadCredential"] {
			id, path, _ := strings.Cut(lc, ":")
			if (id != credentialName || path != tokenPath) && !tlsCredential.MatchString(lc) {
				t.Errorf("%s: LoadCredential=%s, want %s:%s or tls-{ca,cert,key} from %s", name, lc, credentialName, tokenPath, tlsDir)
			}
			loaded[id] = true
		}
		exec := u.one(t, "Service", "ExecStart")
		for _, m := range credRef.FindAllStringSubmatch(exec, -1) {
			if !loaded[m[1]] {
				t.Errorf("%s: ExecStart reads the credential %q, which LoadCredential does not load", name, m[1])
			}
		}
		for _, m := range propsFlag.FindAllStringSubmatch(exec, -1) {
			if m[1] != propertiesPath {
				t.Errorf("%s: --properties %s, want %s", name, m[1], propertiesPath)
			}
		}
	}
	texts := map[string]string{}
	for _, f := range append([]string{"nix/module.nix"}, documents...) {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = string(b)
	}
	for _, f := range []string{"README.md", "nix/module.nix"} {
		for _, want := range []string{tokenPath, propertiesPath} {
			if !strings.Contains(texts[f], want) {
				t.Errorf("%s does not name %s", f, want)
			}
		}
	}
	for f, text := range texts {
		for n, line := range strings.Split(text, "\n") {
			for _, p := range etcPath.FindAllString(line, -1) {
				p = strings.TrimRight(p, ".,;:") // the end of a sentence
				base := filepath.Base(p)
				switch {
				case strings.Contains(base, "token") && p != tokenPath:
					t.Errorf("%s:%d: token file %s, want %s (as the units)", f, n+1, p, tokenPath)
				case strings.HasPrefix(base, "properties") && p != propertiesPath:
					t.Errorf("%s:%d: properties file %s, want %s (as the units)", f, n+1, p, propertiesPath)
				}
			}
			if m := oldTokenRef.FindString(line); m != "" {
				t.Errorf("%s:%d: %q is an old file name (now %s, %s)", f, n+1, strings.TrimSpace(m), credentialName, filepath.Base(propertiesPath))
			}
		}
	}
}
