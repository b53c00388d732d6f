package discovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/dydisnix/dydisnix/model"
)

// Limits of a DNS-SD TXT record (RFC 6763 §6.1 and §6.2).
const (
	// MaxTXTString is the longest TXT string: one length byte, 0–255 bytes.
	MaxTXTString = 255
	// MaxTXTRecord is the largest TXT record that still fits one packet.
	MaxTXTRecord = 1300
)

// TXT version and the keys dydisnix adds to the original format. The values
// are Nix values too, so the original dydisnix-geninfra-avahi, which pastes
// every TXT string into a Nix attribute set, still produces a valid model.
const (
	TXTVersion  = "1"
	KeyTXTVers  = "txtvers"
	KeyHash     = "hash"
	KeyEndpoint = "endpoint"
	KeySig      = "sig"
	KeyCompact  = "compact"
)

// TargetPath is the HTTP path, relative to an announced endpoint, that serves
// the full target model as JSON (the form of one infrastructure target). The
// browser fetches it when an announcement is compact, and the publisher's
// --serve and the deployment agent serve it.
const TargetPath = "/v1/target"

// AgentURLProperty is the target property the browser fills with the
// endpoint a machine announces (its agent's base URL).
const AgentURLProperty = "agentURL"

// ErrTooLarge reports that a target does not fit in a TXT record and there
// is no endpoint to fetch it from.
var ErrTooLarge = errors.New("properties do not fit in a TXT record (255 bytes per string, 1300 bytes in all) and no endpoint is announced to fetch them from")

// Announcement is what one TXT record says about a machine.
type Announcement struct {
	// Target holds the properties, containers and other attributes carried
	// in the TXT record. In a compact announcement it has only the hostname.
	Target *model.Target
	// Version is the txtvers value ("" for records of the original publisher).
	Version string
	// Hash is the announced content hash ("" when none was announced).
	Hash string
	// Endpoint is the announced agent/publisher base URL, if any.
	Endpoint string
	// Sig is the announced signature, if any.
	Sig string
	// Compact is true when the full target must be fetched from Endpoint.
	Compact bool
}

// NormalizeTarget returns a copy of t whose values are exactly what a
// browser reads back from the TXT record (numbers in Nix syntax, and so on),
// so that publisher and browser compute the same content hash.
func NormalizeTarget(t *model.Target) (*model.Target, error) {
	m := targetAttrs(t)
	s, err := FormatNix(m)
	if err != nil {
		return nil, err
	}
	v, err := ParseNixValue(s)
	if err != nil {
		return nil, fmt.Errorf("normalise target: %w", err)
	}
	return model.TargetFromValue(t.Name, v, "<target>")
}

// targetAttrs returns the target's attribute set (properties, containers and
// every other attribute).
func targetAttrs(t *model.Target) map[string]any {
	m := t.ToMap()
	if t.Containers == nil {
		delete(m, "containers")
	} else {
		cs := make(map[string]any, len(t.Containers))
		for k, v := range t.Containers {
			cs[k] = v
		}
		m["containers"] = cs
	}
	return m
}

// TargetEqual reports whether two targets have the same attributes.
func TargetEqual(a, b *model.Target) bool {
	return a.Name == b.Name && model.Equal(targetAttrs(a), targetAttrs(b))
}

// ContentHash returns the content hash of a target: "sha256-" and the
// base64 SHA-256 of the canonical JSON (sorted keys) of its attribute set.
func ContentHash(t *model.Target) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(targetAttrs(t)); err != nil {
		return "", fmt.Errorf("hash target %s: %w", t.Name, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

// EncodeOptions are the extra fields of an announcement.
type EncodeOptions struct {
	// Endpoint is the base URL serving TargetPath (agent or publisher).
	Endpoint string
	// Signer signs the announcement when not nil.
	Signer Signer
	// ForceCompact publishes only the compact keys even when the target fits.
	ForceCompact bool
}

// EncodeTXT builds the TXT strings for a target: txtvers, hash, endpoint and
// signature first, then (when everything fits, "compatible mode") one string
// per property and container property in the original format. When the full
// set does not fit, only the compact keys and the hostname are published
// (compact mode) and compact is true; without an endpoint that is ErrTooLarge.
// t must be normalised (NormalizeTarget).
func EncodeTXT(t *model.Target, opts EncodeOptions) (txt []string, compact bool, err error) {
	hash, err := ContentHash(t)
	if err != nil {
		return nil, false, err
	}
	head := []string{KeyTXTVers + "=" + TXTVersion}
	if head, err = appendString(head, KeyHash+"=", hash); err != nil {
		return nil, false, err
	}
	if opts.Endpoint != "" {
		if head, err = appendString(head, KeyEndpoint+"=", opts.Endpoint); err != nil {
			return nil, false, err
		}
	}
	if opts.Signer != nil {
		sig, err := opts.Signer.Sign(signedMessage(t.Name, hash, opts.Endpoint))
		if err != nil {
			return nil, false, fmt.Errorf("sign announcement: %w", err)
		}
		if head, err = appendString(head, KeySig+"=", sig); err != nil {
			return nil, false, err
		}
	}
	body, err := bodyStrings(t)
	if err != nil {
		return nil, false, err
	}
	full := append(append([]string(nil), head...), body...)
	if !opts.ForceCompact && fits(full) {
		return full, false, nil
	}
	if opts.Endpoint == "" {
		return nil, false, ErrTooLarge
	}
	out := append(head, KeyCompact+"=true")
	if h, ok := t.Properties["hostname"].(string); ok {
		if out, err = appendString(out, `properties."hostname"=`, h); err != nil {
			return nil, false, err
		}
	}
	if !fits(out) {
		return nil, false, fmt.Errorf("even the compact TXT record is too large (hostname or endpoint too long)")
	}
	return out, true, nil
}

// appendString appends prefix and the Nix string literal of s to txt.
func appendString(txt []string, prefix, s string) ([]string, error) {
	q, err := model.NixString(s)
	if err != nil {
		return nil, fmt.Errorf("TXT string %s: %w", prefix, err)
	}
	return append(txt, prefix+q), nil
}

func fits(txt []string) bool {
	total := 0
	for _, s := range txt {
		if len(s) > MaxTXTString {
			return false
		}
		total += 1 + len(s)
	}
	return total <= MaxTXTRecord
}

// bodyStrings writes properties, containers and other attributes in the
// original format.
func bodyStrings(t *model.Target) ([]string, error) {
	var out []string
	for _, k := range model.SortedKeys(t.Properties) {
		v, err := FormatNix(t.Properties[k])
		if err != nil {
			return nil, fmt.Errorf("property %s: %w", k, err)
		}
		name, err := model.NixString(k)
		if err != nil {
			return nil, fmt.Errorf("property name: %w", err)
		}
		out = append(out, "properties."+name+"="+v)
	}
	cs := make([]string, 0, len(t.Containers))
	for c := range t.Containers {
		cs = append(cs, c)
	}
	sort.Strings(cs)
	for _, c := range cs {
		props := t.Containers[c]
		cname, err := model.NixAttrName(c)
		if err != nil {
			return nil, fmt.Errorf("container name: %w", err)
		}
		if len(props) == 0 {
			out = append(out, "containers."+cname+"={ }")
			continue
		}
		for _, k := range model.SortedKeys(props) {
			v, err := FormatNix(props[k])
			if err != nil {
				return nil, fmt.Errorf("container %s property %s: %w", c, k, err)
			}
			name, err := model.NixString(k)
			if err != nil {
				return nil, fmt.Errorf("container %s property name: %w", c, err)
			}
			out = append(out, "containers."+cname+"."+name+"="+v)
		}
	}
	for _, k := range model.SortedKeys(t.Extra) {
		if isMetaKey(k) {
			return nil, fmt.Errorf("target attribute %q clashes with a TXT key of the announcement format", k)
		}
		v, err := FormatNix(t.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		name, err := model.NixString(k)
		if err != nil {
			return nil, fmt.Errorf("attribute name: %w", err)
		}
		out = append(out, name+"="+v)
	}
	return out, nil
}

func isMetaKey(k string) bool {
	switch k {
	case KeyTXTVers, KeyHash, KeyEndpoint, KeySig, KeyCompact:
		return true
	}
	return false
}

// TXTError describes one TXT string that was ignored.
type TXTError struct {
	Index  int
	String string
	Err    error
}

func (e *TXTError) Error() string {
	s := e.String
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("TXT string %d %q: %v", e.Index, s, e.Err)
}

// ParseTXT reads a TXT record of the original format or ours. Strings that
// cannot be read are skipped and returned as warnings; err is set only when
// the record as a whole is unusable (no hostname, conflicting attributes).
// name is the name to use when no properties."hostname" is present ("" makes
// that an error).
func ParseTXT(txt []string, name string) (ann *Announcement, warnings []error, err error) {
	attrs := map[string]any{}
	ann = &Announcement{}
	for i, s := range txt {
		if s == "" {
			continue
		}
		if !utf8.ValidString(s) {
			warnings = append(warnings, &TXTError{i, s, errors.New("not valid UTF-8")})
			continue
		}
		path, value, perr := parseTXTString(s)
		if perr != nil {
			warnings = append(warnings, &TXTError{i, s, perr})
			continue
		}
		if len(path) == 1 && isMetaKey(path[0]) {
			if merr := ann.setMeta(path[0], value); merr != nil {
				warnings = append(warnings, &TXTError{i, s, merr})
			}
			continue
		}
		if serr := setPath(attrs, path, value); serr != nil {
			warnings = append(warnings, &TXTError{i, s, serr})
		}
	}
	if h, ok := attrs["properties"].(map[string]any); ok {
		if hn, ok := h["hostname"].(string); ok && hn != "" {
			name = hn
		}
	}
	if name == "" {
		return nil, warnings, errors.New(`no properties."hostname" in the TXT record`)
	}
	t, terr := model.TargetFromValue(name, attrs, "TXT record")
	if terr != nil {
		return nil, warnings, terr
	}
	ann.Target = t
	if ann.Compact && ann.Endpoint == "" {
		return nil, warnings, errors.New("compact announcement without an endpoint")
	}
	return ann, warnings, nil
}

func (a *Announcement) setMeta(key string, v any) error {
	switch key {
	case KeyCompact:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%s: expected true or false", key)
		}
		a.Compact = b
		return nil
	case KeyTXTVers:
		switch x := v.(type) {
		case json.Number:
			a.Version = string(x)
		case string:
			a.Version = x
		default:
			return fmt.Errorf("%s: expected a number", key)
		}
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s: expected a string", key)
	}
	switch key {
	case KeyHash:
		a.Hash = s
	case KeyEndpoint:
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
			return fmt.Errorf("%s: expected http(s)://HOST[:PORT] (no user, path, query or fragment)", key)
		}
		a.Endpoint = strings.TrimRight(s, "/")
	case KeySig:
		a.Sig = s
	}
	return nil
}

// parseTXTString splits `<attribute path>=<nix value>` (spaces around "="
// and a trailing ";" are accepted).
func parseTXTString(s string) ([]string, any, error) {
	p := &nixParser{s: s}
	path, err := p.attrPath()
	if err != nil {
		return nil, nil, err
	}
	p.skip()
	if p.peek() != '=' {
		return nil, nil, p.errf("expected '=' after %q", strings.Join(path, "."))
	}
	p.pos++
	v, err := p.value(0)
	if err != nil {
		return nil, nil, err
	}
	p.skip()
	if p.peek() == ';' {
		p.pos++
		p.skip()
	}
	if p.pos != len(p.s) {
		return nil, nil, p.errf("unexpected %q after the value", p.rest())
	}
	return path, v, nil
}

// signedMessage is what a signature covers: the target name, the content
// hash of its canonical attributes and the endpoint.
func signedMessage(name, hash, endpoint string) []byte {
	return []byte("dydisnix-mdns-v1\x00" + name + "\x00" + hash + "\x00" + endpoint)
}

// Verify checks an announcement's content: the hash (when announced) must
// match target, and when v is not nil the signature must be valid.
func (a *Announcement) Verify(target *model.Target, v Verifier) error {
	if a.Hash != "" {
		h, err := ContentHash(target)
		if err != nil {
			return err
		}
		if h != a.Hash {
			return fmt.Errorf("content hash mismatch: announced %s, content has %s", a.Hash, h)
		}
	}
	return a.verifySig(target.Name, v)
}

// verifySig checks the signature of the announcement of name (nil v: no
// check). It needs no content, so a compact announcement is checked before
// its endpoint is fetched.
func (a *Announcement) verifySig(name string, v Verifier) error {
	if v == nil {
		return nil
	}
	if a.Sig == "" {
		return errors.New("announcement is not signed")
	}
	if a.Hash == "" {
		return errors.New("signed announcement carries no hash")
	}
	return v.Verify(signedMessage(name, a.Hash, a.Endpoint), a.Sig)
}
