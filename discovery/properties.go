package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dydisnix/dydisnix/model"
)

// DysnomiaCommand prints the machine's properties and containers as a Nix
// expression (the source of the original publisher).
const DysnomiaCommand = "dysnomia-containers --generate-expr"

// LoadTargetFile reads a machine's properties from a file (.json, .yaml,
// .yml or .nix) in the shape of one infrastructure target:
// { "properties": {...}, "containers": {...}, "system": ... }. A file with
// neither "properties" nor "containers" at the top is taken as the
// properties themselves.
func LoadTargetFile(ctx context.Context, file string) (*model.Target, error) {
	v, err := model.LoadValueContext(ctx, file, model.KindPlain, nil, model.NixOptions{})
	if err != nil {
		return nil, err
	}
	return targetFromDoc(v, file)
}

// TargetFromCommand runs a command (through sh -c) that prints a Nix
// expression of the machine, such as DysnomiaCommand, and reads it.
func TargetFromCommand(ctx context.Context, command string) (*model.Target, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run %q: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	v, err := EvalNixOrJSON(ctx, stdout.Bytes(), command)
	if err != nil {
		return nil, err
	}
	return targetFromDoc(v, command)
}

func targetFromDoc(v any, file string) (*model.Target, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: expected an attribute set with properties and containers, got %s", file, model.TypeName(v))
	}
	if _, p := m["properties"]; !p {
		if _, c := m["containers"]; !c {
			m = map[string]any{"properties": m}
		}
	}
	return model.TargetFromValue("", m, file)
}

// ApplyHostname names the target after its hostname property; when there
// is none, after the machine's host name, which is then added as the
// hostname property (the original browser names targets by it).
func ApplyHostname(t *model.Target) (*model.Target, error) {
	t = t.Clone()
	if t.Properties == nil {
		t.Properties = map[string]any{}
	}
	if h, ok := t.Properties["hostname"].(string); ok && h != "" {
		t.Name = h
		return t, nil
	}
	if _, ok := t.Properties["hostname"]; ok {
		return nil, errors.New(`property "hostname" must be a non-empty string`)
	}
	h, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	t.Name = h
	t.Properties["hostname"] = h
	return t, nil
}

// EvalNixOrJSON reads generator output: JSON when it parses as JSON, else a
// Nix expression evaluated as a model file (model.LoadValueContext). what
// names the producer in errors; cancelling ctx stops the evaluation.
func EvalNixOrJSON(ctx context.Context, data []byte, what string) (any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		if v, err := model.DecodeValue(trimmed, model.FormatJSON, what); err == nil {
			return v, nil
		}
	}
	dir, err := os.MkdirTemp("", "dydisnix-nix-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f := filepath.Join(dir, "expr.nix")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		return nil, err
	}
	v, err := model.LoadValueContext(ctx, f, model.KindPlain, nil, model.NixOptions{})
	if err != nil {
		return nil, fmt.Errorf("output of %s: %w", what, err)
	}
	return v, nil
}
