package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Kind names the kind of model a file holds; the Nix reader evaluates each
// kind with the arguments its Disnix form expects.
type Kind string

// The model kinds.
const (
	KindServices       Kind = "services"
	KindInfrastructure Kind = "infrastructure"
	KindDistribution   Kind = "distribution"
	// KindPlain is any other file (QoS policy, ports, ids, id resources,
	// augmentation rules): a .nix file of this kind is evaluated as it is.
	KindPlain Kind = "plain"
)

// Format is a file format picked by a file's extension.
type Format string

// The supported formats.
const (
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
	FormatNix  Format = "nix"
)

// FormatOf returns the format a file's extension selects.
func FormatOf(file string) (Format, error) {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".json":
		return FormatJSON, nil
	case ".yaml", ".yml":
		return FormatYAML, nil
	case ".nix":
		return FormatNix, nil
	}
	return "", fmt.Errorf("%s: unknown model file extension %q: expected .json, .yaml, .yml or .nix", file, filepath.Ext(file))
}

// LoadValue reads a file into its JSON-like value, picking the reader by
// extension. infra is passed to a .nix distribution model.
func LoadValue(file string, kind Kind, infra Infrastructure) (any, error) {
	format, err := FormatOf(file)
	if err != nil {
		return nil, err
	}
	if format == FormatNix {
		return evalNixModel(file, kind, infra)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return DecodeValue(data, format, file)
}

// DecodeValue decodes JSON or YAML bytes into a normalised JSON-like value.
func DecodeValue(data []byte, format Format, file string) (any, error) {
	switch format {
	case FormatJSON:
		return decodeJSON(data, file)
	case FormatYAML:
		return decodeYAML(data, file)
	}
	return nil, fmt.Errorf("%s: cannot decode format %q from bytes", file, format)
}

func decodeJSON(data []byte, file string) (any, error) {
	if v, ok := decodeJSONFast(data); ok {
		return v, nil
	}
	return decodeJSONSlow(data, file)
}

// decodeJSONSlow decodes with encoding/json and explains what is wrong with
// the input: where the syntax breaks, trailing data, a duplicate key.
func decodeJSONSlow(data []byte, file string) (any, error) {
	if off := invalidUTF8(data); off >= 0 {
		line, col := lineCol(data, off)
		return nil, errAt(file, fmt.Sprintf("%d:%d", line, col), "invalid UTF-8 (byte 0x%02x): keys and strings must be UTF-8", data[off])
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonError(data, file, err)
	}
	end := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		for end < len(data) && (data[end] == ' ' || data[end] == '\t' || data[end] == '\n' || data[end] == '\r') {
			end++
		}
		line, col := lineCol(data, end)
		return nil, errAt(file, fmt.Sprintf("%d:%d", line, col), "expected end of input after the JSON value")
	}
	if off, key, dup := duplicateJSONKey(data[:end]); dup {
		line, col := lineCol(data, off)
		return nil, errAt(file, fmt.Sprintf("%d:%d", line, col), "duplicate key %q", key)
	}
	return v, nil
}

// invalidUTF8 returns the offset of the first byte of data that is not
// part of valid UTF-8, or -1.
func invalidUTF8(data []byte) int {
	for off := 0; off < len(data); {
		if data[off] < utf8.RuneSelf {
			off++
			continue
		}
		r, n := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && n == 1 {
			return off
		}
		off += n
	}
	return -1
}

// duplicateJSONKey scans valid JSON for an object with a repeated key
// (encoding/json silently keeps the last one) and returns the offset and
// name of the first repetition.
func duplicateJSONKey(data []byte) (int, string, bool) {
	type frame struct {
		keys   map[string]struct{}
		object bool
		expect bool // an object expects a key next
	}
	var stack []frame
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{':
			stack = append(stack, frame{object: true, expect: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expect = true
			}
		case '"':
			start := i
			esc := false
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					esc = true
					i++
				}
			}
			n := len(stack)
			if n == 0 || !stack[n-1].object || !stack[n-1].expect {
				continue
			}
			stack[n-1].expect = false
			key := string(data[start+1 : min(i, len(data))])
			if esc {
				var k string
				if err := json.Unmarshal(data[start:min(i+1, len(data))], &k); err == nil {
					key = k
				}
			}
			if stack[n-1].keys == nil {
				stack[n-1].keys = map[string]struct{}{}
			}
			if _, dup := stack[n-1].keys[key]; dup {
				return start, key, true
			}
			stack[n-1].keys[key] = struct{}{}
		}
	}
	return 0, "", false
}

func jsonError(data []byte, file string, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// Offset counts the byte that caused the error.
		line, col := lineCol(data, int(syn.Offset)-1)
		return errAt(file, fmt.Sprintf("%d:%d", line, col), "invalid JSON: %v", syn)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		line, col := lineCol(data, len(data))
		return errAt(file, fmt.Sprintf("%d:%d", line, col), "invalid JSON: unexpected end of input")
	}
	return errAt(file, "", "invalid JSON: %v", err)
}

func lineCol(data []byte, off int) (int, int) {
	if off < 0 {
		off = 0
	}
	if off > len(data) {
		off = len(data)
	}
	line, col := 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func decodeYAML(data []byte, file string) (any, error) {
	var node yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&node); err != nil && !errors.Is(err, io.EOF) {
		return nil, errAt(file, "", "invalid YAML: %v", err)
	}
	if node.Kind == 0 {
		return nil, errAt(file, "", "empty YAML document")
	}
	// A model file holds one document: a second one is never ignored.
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, errAt(file, "", "invalid YAML: %v", err)
	default:
		return nil, errAt(file, secondDocumentPlace(data, second), "a second YAML document: a model file holds one document")
	}
	// Aliases are expanded; bound the expansion so a small document cannot
	// blow up ("billion laughs") or loop through a recursive alias.
	budget := 10*countYAMLNodes(&node) + 10000
	return yamlValue(&node, file, &budget)
}

// secondDocumentPlace is the place of the "---" that starts the second
// document of data: the first one after some content (or, failing that,
// the place of the second document's first node).
func secondDocumentPlace(data []byte, second yaml.Node) string {
	content := false
	for i, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		switch {
		case bytes.HasPrefix(line, []byte("---")) && content:
			return fmt.Sprintf("%d:1", i+1)
		case bytes.HasPrefix(line, []byte("---")), len(t) == 0, t[0] == '#', t[0] == '%':
		default:
			content = true
		}
	}
	return fmt.Sprintf("%d:%d", second.Line, second.Column)
}

func countYAMLNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countYAMLNodes(k)
	}
	return c
}

// yamlValue converts a YAML node to a JSON-like value, keeping the position
// of any problem for the error message.
func yamlValue(n *yaml.Node, file string, budget *int) (any, error) {
	place := fmt.Sprintf("%d:%d", n.Line, n.Column)
	*budget--
	if *budget < 0 {
		return nil, errAt(file, place, "YAML aliases expand to too large a document")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0], file, budget)
	case yaml.AliasNode:
		return yamlValue(n.Alias, file, budget)
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, errAt(file, fmt.Sprintf("%d:%d", k.Line, k.Column), "expected a scalar key")
			}
			if k.Tag == "!!merge" {
				return nil, errAt(file, fmt.Sprintf("%d:%d", k.Line, k.Column), "YAML merge keys are not supported")
			}
			if _, dup := out[k.Value]; dup {
				return nil, errAt(file, fmt.Sprintf("%d:%d", k.Line, k.Column), "duplicate key %q", k.Value)
			}
			v, err := yamlValue(n.Content[i+1], file, budget)
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c, file, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, errAt(file, place, "invalid value: %v", err)
		}
		if _, isTime := v.(interface{ IsZero() bool }); isTime {
			return n.Value, nil
		}
		if f, isFloat := v.(float64); isFloat && n.ShortTag() == "!!float" {
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, errAt(file, place, "number %s is not finite", n.Value)
			}
			// A YAML float stays a float (2.0 is not the int 2).
			return FloatNumber(f), nil
		}
		nv, err := Normalize(v)
		if err != nil {
			return nil, errAt(file, place, "%v", err)
		}
		return nv, nil
	}
	return nil, errAt(file, place, "unsupported YAML node")
}

// LoadServices reads a services model (.json, .yaml or .nix).
func LoadServices(file string) (Services, error) {
	if s, ok, err := loadServicesJSON(file); ok {
		return s, err
	}
	v, err := LoadValue(file, KindServices, nil)
	if err != nil {
		return nil, err
	}
	return servicesFromValue(v, file, true)
}

// LoadInfrastructure reads an infrastructure model (.json, .yaml or .nix).
func LoadInfrastructure(file string) (Infrastructure, error) {
	v, err := LoadValue(file, KindInfrastructure, nil)
	if err != nil {
		return nil, err
	}
	infra, err := InfrastructureFromValue(v, file)
	if err == nil {
		AddSecretsOf(infra) // secret-named properties are never shown
	}
	return infra, err
}

// LoadDistribution reads a distribution model (.json, .yaml or .nix). A .nix
// distribution is a function {infrastructure}: ... and is given infra; its
// target attribute sets are turned back into target names.
func LoadDistribution(file string, infra Infrastructure) (Distribution, error) {
	v, err := LoadValue(file, KindDistribution, infra)
	if err != nil {
		return nil, err
	}
	return DistributionFromValue(v, file)
}

// loadServicesJSON is the services loaders' path for a .json file: the
// services are built as the decoder reads them, with no map of the whole
// model in between. ok is false for another format (the caller loads it
// the general way); with ok, the result is what LoadValue and
// ServicesFromValue give, errors included.
func loadServicesJSON(file string) (s Services, ok bool, err error) {
	if format, err := FormatOf(file); err != nil || format != FormatJSON {
		return nil, false, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, true, fmt.Errorf("read %s: %w", file, err)
	}
	s, err = decodeServicesJSON(data, file)
	return s, true, err
}

// decodeServicesJSON decodes a JSON services model. The services are built
// from each service's attribute set as soon as it is decoded, with no map of
// the whole model in between; a large model is read in two halves at once.
// Anything unusual (invalid JSON, a repeated name, a service that is not an
// attribute set or has an ill-typed attribute) goes the general way, which
// says what is wrong.
func decodeServicesJSON(data []byte, file string) (Services, error) {
	parts := 1
	if len(data) >= parallelDecodeMin && runtime.GOMAXPROCS(0) > 1 {
		parts = 2
	}
	return decodeServicesJSONParts(data, file, parts)
}

// decodeServicesJSONParts is decodeServicesJSON reading the model in up to
// parts parts at once.
func decodeServicesJSONParts(data []byte, file string, parts int) (Services, error) {
	n := bytes.Count(data, []byte{'{'}) // at most one service per '{'
	builders := make([]*servicesBuilder, parts)
	builders[0] = newServicesBuilder(file, n, true) // it gets them all in the end
	for i := 1; i < parts; i++ {
		builders[i] = newServicesBuilder(file, n/parts+1, true)
	}
	ok := decodeObjectMembers(data, parts, func(part int, key string, val any) bool {
		b := builders[part]
		if _, isSet := val.(map[string]any); !isSet {
			return false
		}
		if _, dup := b.out[key]; dup {
			return false
		}
		b.add(key, val)
		return len(b.errs) == 0
	})
	if ok {
		out := builders[0].out
		for _, b := range builders[1:] {
			for key, s := range b.out {
				if _, dup := out[key]; dup {
					ok = false
					break
				}
				out[key] = s
			}
		}
	}
	if ok {
		return builders[0].out, nil
	}
	v, err := decodeJSON(data, file)
	if err != nil {
		return nil, err
	}
	return servicesFromValue(v, file, true)
}

// parallelDecodeMin is the size from which a services model is decoded in
// two halves at once (5000 services are 600 kB).
const parallelDecodeMin = 256 << 10
