package qos

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dydisnix/dydisnix/model"
)

// Str returns a string parameter; present is false when it is absent or null.
func (p Params) Str(key string) (s string, present bool, err error) {
	v, ok := p[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok = v.(string)
	if !ok {
		return "", false, fmt.Errorf("parameter %s: expected a string, got %s", key, model.TypeName(v))
	}
	return s, true, nil
}

// Bool returns a boolean parameter (false when absent or null).
func (p Params) Bool(key string) (bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("parameter %s: expected true or false, got %s", key, model.TypeName(v))
	}
	return b, nil
}

// RequireStr returns a string parameter that must be present and not empty.
func (p Params) RequireStr(key string) (string, error) {
	s, ok, err := p.Str(key)
	if err != nil {
		return "", err
	}
	if !ok || s == "" {
		return "", fmt.Errorf("parameter %s is required (a property name)", key)
	}
	return s, nil
}

// Strs returns a parameter that is a list of strings; a single string is a
// one-element list.
func (p Params) Strs(key string) ([]string, bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}, true, nil
	case []string:
		return append([]string(nil), x...), true, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false, fmt.Errorf("parameter %s[%d]: expected a string, got %s", key, i, model.TypeName(e))
			}
			out[i] = s
		}
		return out, true, nil
	}
	return nil, false, fmt.Errorf("parameter %s: expected a list of strings, got %s", key, model.TypeName(v))
}

// Duration returns a duration parameter written as a Go duration ("30s",
// "2m") or a number of seconds; def when absent.
func (p Params) Duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(x)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("parameter %s: expected a positive duration like \"30s\", got %q", key, x)
		}
		return d, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("parameter %s: expected a positive number of seconds, got %s", key, x)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("parameter %s: expected a duration like \"30s\", got %s", key, model.TypeName(v))
}
