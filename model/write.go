package model

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Encode returns the text of a model value in a format: stable JSON
// (EncodeJSON), YAML with sorted keys, or Nix. A Distribution written as
// Nix takes the Disnix function form (DistributionNix); anything else is
// written as a plain Nix value (EncodeNix).
func Encode(v any, format Format) ([]byte, error) {
	switch format {
	case FormatJSON:
		return EncodeJSON(v)
	case FormatYAML:
		return EncodeYAML(v)
	case FormatNix:
		if d, ok := v.(Distribution); ok {
			if err := checkNixNames(d); err != nil {
				return nil, err
			}
			return []byte(DistributionNix(d)), nil
		}
		return EncodeNix(v)
	}
	return nil, fmt.Errorf("unknown output format %q: expected json, yaml or nix", format)
}

func checkNixNames(d Distribution) error {
	for svc, ms := range d {
		if _, err := NixAttrName(svc); err != nil {
			return err
		}
		for _, m := range ms {
			if _, err := NixAttrName(m.Target); err != nil {
				return err
			}
			if _, err := NixString(m.Container); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteModelFile writes a model value to file atomically (WriteFileAtomic,
// mode 0644) in format; an empty format is picked from the file's
// extension. On any error the file is left as it was.
func WriteModelFile(file string, v any, format Format) error {
	if format == "" {
		f, err := FormatOf(file)
		if err != nil {
			return err
		}
		format = f
	}
	data, err := Encode(v, format)
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return WriteFileAtomic(file, data, 0o644)
}

// EncodeYAML returns a model value as YAML: keys sorted, numbers written as
// they are held, strings quoted whenever YAML would read them as another type.
func EncodeYAML(v any) ([]byte, error) {
	val, err := ToValue(v)
	if err != nil {
		return nil, err
	}
	node, err := yamlNode(val)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func yamlNode(v any) (*yaml.Node, error) {
	switch x := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	case bool:
		s := "false"
		if x {
			s = "true"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: s}, nil
	case string:
		return yamlString(x), nil
	case json.Number:
		if !validNumber(string(x)) {
			return nil, fmt.Errorf("invalid number %q", string(x))
		}
		tag := "!!float"
		if IsInt(x) {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(x)}, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i, e := range x {
			c, err := yamlNode(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range SortedKeys(x) {
			kn := yamlString(k)
			c, err := yamlNode(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			n.Content = append(n.Content, kn, c)
		}
		return n, nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// yamlString returns a string scalar; strings with line breaks or control
// characters are double-quoted (yaml.v3's block styles do not read back
// exactly for leading newlines or tabs).
func yamlString(s string) *yaml.Node {
	n := &yaml.Node{}
	n.SetString(s)
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			n.Style = yaml.DoubleQuotedStyle
			break
		}
	}
	return n
}
