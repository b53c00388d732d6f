package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dydisnix/dydisnix/internal/testenv"
)

// TestFilterDerivationsVectors turns each filterDerivations vector's raw
// services into a real Disnix services model (pkg a derivation of a pkgs
// that must never be forced, dependsOn/connectsTo references to the other
// services), evaluates it with nix-instantiate and compares the filtered
// model with the vector's expected value.
func TestFilterDerivationsVectors(t *testing.T) {
	testenv.NeedCommand(t, "nix-instantiate")
	files, err := filepath.Glob("testdata/vectors/filterDerivations-*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	for _, file := range files {
		file := file
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v struct {
				Input struct {
					RawServices map[string]map[string]any `json:"rawServices"`
				} `json:"input"`
				Expected map[string]any `json:"expected"`
			}
			dec := json.NewDecoder(strings.NewReader(string(data)))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			nixFile := filepath.Join(t.TempDir(), "services.nix")
			if err := os.WriteFile(nixFile, []byte(rawServicesNix(t, v.Input.RawServices)), 0o644); err != nil {
				t.Fatal(err)
			}
			svcs, err := LoadServices(nixFile)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for name, s := range svcs {
				got[name] = s.ToMap()
			}
			gotJSON, _ := CanonicalJSON(got)
			wantJSON, _ := CanonicalJSON(v.Expected)
			var g, w any
			json.Unmarshal(gotJSON, &g)
			json.Unmarshal(wantJSON, &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("filtered services differ\n got %s\nwant %s", gotJSON, wantJSON)
			}
		})
	}
}

// rawServicesNix writes raw services as a Disnix services model: "pkg" becomes
// a derivation of pkgs, a {name = X;} dependency a reference to the service
// whose name is X.
func rawServicesNix(t *testing.T, raw map[string]map[string]any) string {
	t.Helper()
	keyOf := map[string]string{}
	for key, s := range raw {
		if n, ok := s["name"].(string); ok {
			keyOf[n] = key
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{system, pkgs, distribution, invDistribution}:\n\nlet\n  customPkgs = pkgs.callPackage ./pkgs.nix {};\nin\nrec {\n")
	for _, key := range keys {
		fmt.Fprintf(&b, "  %s = {\n", QuoteNix(key))
		s := raw[key]
		attrs := make([]string, 0, len(s))
		for a := range s {
			attrs = append(attrs, a)
		}
		sort.Strings(attrs)
		for _, a := range attrs {
			val := s[a]
			switch {
			case a == "pkg":
				fmt.Fprintf(&b, "    pkg = customPkgs.%s;\n", QuoteNix(key))
			case a == "dependsOn" || a == "connectsTo":
				deps, _ := val.(map[string]any)
				fmt.Fprintf(&b, "    %s = {\n", a)
				for _, param := range SortedKeys(deps) {
					ref, _ := deps[param].(map[string]any)
					name, _ := ref["name"].(string)
					ref2 := keyOf[name]
					if !IsNixIdent(ref2) {
						t.Fatalf("service key %q is not a Nix identifier", ref2)
					}
					fmt.Fprintf(&b, "      %s = %s;\n", QuoteNix(param), ref2) // the rec set's service
				}
				b.WriteString("    };\n")
			default:
				fmt.Fprintf(&b, "    %s = %s;\n", QuoteNix(a), nixText(t, val))
			}
		}
		b.WriteString("  };\n")
	}
	b.WriteString("}\n")
	return b.String()
}
