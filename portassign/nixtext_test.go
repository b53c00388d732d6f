package portassign

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dydisnix/dydisnix/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestNixGolden checks the exact Nix text of ids and ports files against
// golden files, and that the real evaluator reads each back to the JSON form.
func TestNixGolden(t *testing.T) {
	t.Parallel()
	names := map[string]bool{
		"idassign-01-fresh-global":                true,
		"idassign-05-resource-removed":            true,
		"idassign-06-machine-same-target":         true,
		"idassign-custom-property":                true,
		"portassign-01-shared-fresh":              true,
		"portassign-06-private-same-target":       true,
		"portassign-07-private-different-targets": true,
	}
	found := 0
	for _, v := range loadVectors(t) {
		if !names[v.Name] {
			continue
		}
		found++
		v := v
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			value, nixText := nixOf(t, v)
			golden := filepath.Join("testdata", "golden", v.Name+".nix")
			if *update {
				if err := os.WriteFile(golden, nixText, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(nixText, want) {
				t.Fatalf("Nix text differs from %s:\ngot:\n%s\nwant:\n%s", golden, nixText, want)
			}
			out, err := exec.Command("nix-instantiate", "--eval", "--strict", "--json", golden).Output()
			if err != nil {
				t.Fatalf("nix-instantiate %s: %v", golden, err)
			}
			got, err := model.DecodeValue(out, model.FormatJSON, golden)
			if err != nil {
				t.Fatal(err)
			}
			if !model.Equal(got, norm(t, value)) {
				t.Fatalf("evaluated %s to %s, want %s", golden, out, mustJSON(value))
			}
		})
	}
	if found != len(names) {
		t.Fatalf("found %d of %d golden vectors", found, len(names))
	}
}

func nixOf(t *testing.T, v vector) (map[string]any, []byte) {
	t.Helper()
	value, err := runVector(t, v)
	if err != nil {
		t.Fatal(err)
	}
	if v.Kind == "idassign" {
		ids, err := ParseIDs(norm(t, value), "")
		if err != nil {
			t.Fatal(err)
		}
		return value, ids.Nix()
	}
	conf, err := ParsePortConfig(norm(t, value), "")
	if err != nil {
		t.Fatal(err)
	}
	ports := &Ports{Ports: map[string]int64{}, Config: conf}
	for k, n := range value["ports"].(map[string]any) {
		i, _ := intOf(n, false)
		ports.Ports[k] = i
	}
	return value, ports.Nix()
}

// TestIDsNixLayout pins the exact layout of dydisnix.md §1.9 by hand.
func TestIDsNixLayout(t *testing.T) {
	t.Parallel()
	ids := &IDs{
		IDs:                      map[string]map[string]int64{"ports": {"testService1": 3000}, "uids": {}},
		LastAssignments:          map[string]int64{"ports": 3000},
		LastAssignmentsPerTarget: map[string]map[string]int64{"testtarget2": {"ports": 3001}},
	}
	want := `{
  "ids" = {
    "ports" = {
      "testService1" = 3000;
    };
    "uids" = {
    };
  };
  "lastAssignments" = {
    "ports" = 3000;
  };
  "lastAssignmentsPerTarget" = {
    "testtarget2" = {
      "ports" = 3001;
    };
  };
}`
	if got := string(ids.Nix()); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	empty := `{
  "ids" = {
  };
}`
	if got := string(NewIDs().Nix()); got != empty {
		t.Fatalf("got:\n%s\nwant:\n%s", got, empty)
	}
}

func TestNixStringEscapes(t *testing.T) {
	t.Parallel()
	ids := &IDs{IDs: map[string]map[string]int64{"p": {"we\"ird ${x} \\ \n\tname$": 1}}}
	dir := t.TempDir()
	f := filepath.Join(dir, "ids.nix")
	if err := os.WriteFile(f, ids.Nix(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := LoadIDs(f)
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(back.Value()) != mustJSON(ids.Value()) {
		t.Fatalf("read back %s, want %s", mustJSON(back.Value()), mustJSON(ids.Value()))
	}
}
