package model

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// synthServices builds a deterministic services model of n services with
// dependsOn links to earlier services (a DAG), like ../shared/bench.
func synthServices(n int) Services {
	r := rand.New(rand.NewSource(int64(1000003*n + 17)))
	types := []string{"process", "wrapper", "mysql-database", "tomcat-webapplication"}
	s := make(Services, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s%04d", i)
		svc := &Service{Name: name, Type: types[r.Intn(len(types))], Attrs: map[string]any{
			"requireMem": json.Number(fmt.Sprint(16 + r.Intn(1009))),
		}}
		if r.Intn(10) == 0 {
			svc.Attrs["stateful"] = true
		}
		for k := r.Intn(4); k > 0 && i > 0; k-- {
			dep := fmt.Sprintf("s%04d", r.Intn(i))
			if !slices.Contains(svc.DependsOn, dep) {
				svc.DependsOn = append(svc.DependsOn, dep)
			}
		}
		sort.Strings(svc.DependsOn) // a Nix dependsOn attribute set yields sorted names
		svc.HasDependsOn = len(svc.DependsOn) > 0
		s[name] = svc
	}
	return s
}

func synthServicesNix(s Services) string {
	var b strings.Builder
	b.WriteString("{system, pkgs, distribution, invDistribution}:\n\nrec {\n")
	for _, name := range s.Names() {
		svc := s[name]
		fmt.Fprintf(&b, "  %s = {\n    name = %q;\n    type = %q;\n    pkg = pkgs.callPackage ./pkgs/%s.nix { };\n    requireMem = %s;\n",
			name, name, svc.Type, name, svc.Attrs["requireMem"])
		if svc.Stateful() {
			b.WriteString("    stateful = true;\n")
		}
		if len(svc.DependsOn) > 0 {
			b.WriteString("    dependsOn = { inherit")
			for _, d := range svc.DependsOn {
				b.WriteString(" " + d)
			}
			b.WriteString("; };\n")
		}
		b.WriteString("  };\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func BenchmarkDecodeServicesJSON5000(b *testing.B) {
	data, err := EncodeJSON(synthServices(5000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := DecodeValue(data, FormatJSON, "s.json")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ServicesFromValue(v, "s.json"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadServicesJSON5000 is what a command does with a services
// file: read, decode (the one-pass decoder) and build the model in place.
func BenchmarkLoadServicesJSON5000(b *testing.B) {
	data, err := EncodeJSON(synthServices(5000))
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "services.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := LoadServices(file); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONSlow5000 is the encoding/json path the one-pass
// decoder replaces (and that still explains invalid input), for comparison.
func BenchmarkDecodeJSONSlow5000(b *testing.B) {
	data, err := EncodeJSON(synthServices(5000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := decodeJSONSlow(data, "s.json"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeServicesYAML5000(b *testing.B) {
	data, err := EncodeYAML(synthServices(5000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := DecodeValue(data, FormatYAML, "s.yaml")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ServicesFromValue(v, "s.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateServices5000(b *testing.B) {
	s := synthServices(5000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Validate("s.json"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashServices5000(b *testing.B) {
	s := synthServices(5000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = s.Hash()
	}
}

func BenchmarkEncodeJSONServices5000(b *testing.B) {
	s := synthServices(5000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := EncodeJSON(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeJSONDistribution5000 is the output of a planner: 5000
// services on one target each.
func BenchmarkEncodeJSONDistribution5000(b *testing.B) {
	d := Distribution{}
	for i := 0; i < 5000; i++ {
		d[fmt.Sprintf("s%04d", i)] = []Mapping{{Target: fmt.Sprintf("m%03d", i%500)}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := EncodeJSON(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeNixServices5000(b *testing.B) {
	s := synthServices(5000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := EncodeNix(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalNixServices5000 measures the real nix-instantiate run on a
// Disnix-form services model whose every pkg needs pkgs.
func BenchmarkEvalNixServices5000(b *testing.B) {
	requireNix(b)
	s := synthServices(5000)
	file := filepath.Join(b.TempDir(), "services.nix")
	if err := os.WriteFile(file, []byte(synthServicesNix(s)), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := LoadServices(file)
		if err != nil {
			b.Fatal(err)
		}
		if got.Hash() != s.Hash() {
			b.Fatal("the Nix model does not read back as the Go model")
		}
	}
}
