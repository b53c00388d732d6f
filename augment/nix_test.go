package augment

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dydisnix/dydisnix/internal/nixeval"
	"github.com/dydisnix/dydisnix/model"
)

func TestNixReferenceAugmentation(t *testing.T) {
	t.Parallel()
	a, err := Load("testdata/augment.nix", Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := testInfra(t)
	before, _ := json.Marshal(in)
	out, err := a.Apply(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(in); string(after) != string(before) {
		t.Fatal("Apply modified its input")
	}
	for _, name := range in.Names() {
		if out[name].Properties["augment"] != "augment" {
			t.Errorf("%s: augment property missing: %v", name, out[name].Properties)
		}
	}
	// Everything else survives the trip through Nix unchanged.
	if got := out["test2"].Properties["labels"]; !model.Equal(got, in["test2"].Properties["labels"]) {
		t.Errorf("labels changed to %v", got)
	}
	if out["test1"].System() != "x86_64-linux" {
		t.Errorf("system lost: %v", out["test1"].Extra)
	}
}

func TestNixLibAugmentation(t *testing.T) {
	t.Parallel()
	a, err := Load("testdata/secrets.nix", Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Apply(context.Background(), testInfra(t))
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata/augment.nix")
	got, _ := json.Marshal(out)
	want := `{"db3":{"containers":{"mysql-database":{"mysqlPassword":"pw-db3"},"process":{}},"properties":{"dbHosts":"db3,test1","hostname":"db3","keyFile":"` + abs + `"}},` +
		`"test1":{"containers":{"mysql-database":{"mysqlPassword":"pw-test1","mysqlPort":3306}},"properties":{"dbHosts":"db3,test1","fastDisk":true,"hostname":"test1","keyFile":"` + abs + `","mem":"2048","tags":["ssd","fast"],"zone":"eu"},"system":"x86_64-linux"},` +
		`"test2":{"properties":{"hostname":"test2","labels":{"a":1,"b":{"c":2}},"mem":1024,"zone":"us"}}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestNixModelErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name, src, want string
	}{
		{"only infrastructure argument", `{infrastructure}: builtins.mapAttrs (n: t: t // { extra = n; }) infrastructure`, ""},
		{"ellipsis", `{infrastructure, ...}: infrastructure`, ""},
		{"not a function", `{ a = 1; }`, "must be a function"},
		{"returns a list", `{infrastructure, lib}: [ ]`, "must return an infrastructure attribute set, got a list"},
		{"bad target", `{infrastructure, lib}: { t = 1; }`, "(result): t: expected"},
		{"throws", `{infrastructure, lib}: throw "boom"`, "boom"},
		{"unknown lib function", `{infrastructure, lib}: lib.doesNotExist infrastructure`, "doesNotExist"},
		{"syntax error", `{infrastructure, lib}: {`, "syntax error"},
	}
	for i, tc := range cases {
		tc := tc
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".nix")
		if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = i
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := Load(file, Options{})
			if err != nil {
				t.Fatal(err)
			}
			in := testInfra(t)
			in["test1"].Properties["password"] = "hunter2-secret"
			_, err = a.Apply(context.Background(), in)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the infrastructure: %v", err)
			}
		})
	}
}

// TestLib evaluates the embedded lib's functions against the results
// nixpkgs' lib gives for the same calls.
func TestLib(t *testing.T) {
	t.Parallel()
	calls := map[string]string{
		`recursiveUpdate { a = { b = 1; c = 2; }; d = 1; } { a = { b = 3; }; d = { e = 1; }; }`:   `{"a":{"b":3,"c":2},"d":{"e":1}}`,
		`filterAttrs (n: v: v > 1) { a = 1; b = 2; }`:                                             `{"b":2}`,
		`mapAttrs (n: v: n + v) { a = "x"; }`:                                                     `{"a":"ax"}`,
		`mapAttrs' (n: v: nameValuePair "p${n}" v) { a = 1; }`:                                    `{"pa":1}`,
		`mapAttrsToList (n: v: v) { b = 2; a = 1; }`:                                              `[1,2]`,
		`attrNames { b = 1; a = 2; }`:                                                             `["a","b"]`,
		`attrValues { b = 1; a = 2; }`:                                                            `[2,1]`,
		`[ (optionalAttrs true { a = 1; }) (optionalAttrs false { a = 1; }) ]`:                    `[{"a":1},{}]`,
		`[ (elem 2 [ 1 2 ]) (hasAttr "a" { a = 1; }) ]`:                                           `[true,true]`,
		`listToAttrs [ (nameValuePair "a" 1) ]`:                                                   `{"a":1}`,
		`foldl' (a: b: a - b) 10 [ 1 2 ]`:                                                         `7`,
		`foldl (a: b: a - b) 10 [ 1 2 ]`:                                                          `7`,
		`foldr (a: b: a - b) 10 [ 1 2 ]`:                                                          `9`,
		`concatMap (x: [ x x ]) [ 1 2 ]`:                                                          `[1,1,2,2]`,
		`optional true 1 ++ optional false 2 ++ optionals true [ 3 4 ]`:                           `[1,3,4]`,
		`genAttrs [ "a" "b" ] (n: n)`:                                                             `{"a":"a","b":"b"}`,
		`attrByPath [ "a" "b" ] 0 { a.b = 5; }`:                                                   `5`,
		`[ (hasAttrByPath [ "a" "c" ] { a.b = 1; }) (getAttrFromPath [ "a" "b" ] { a.b = 1; }) ]`: `[false,1]`,
		`setAttrByPath [ "a" "b" ] 1`:                                                             `{"a":{"b":1}}`,
		`[ (concatStringsSep "," [ "a" "b" ]) (concatMapStrings (x: x + x) [ "a" "b" ]) ]`:        `["a,b","aabb"]`,
		`splitString "." "a.b.c"`:                                                                 `["a","b","c"]`,
		`[ (hasPrefix "ab" "abc") (hasSuffix "bc" "abc") (hasInfix "b.c" "ab.cd") (removePrefix "a" "abc") (removeSuffix "c" "abc") ]`: `[true,true,true,"bc","ab"]`,
		`[ (toUpper "abC") (toLower "AbC") (toInt "42") ]`:                                                                        `["ABC","abc",42]`,
		`[ (unique [ 1 2 1 ]) (flatten [ 1 [ 2 [ 3 ] ] ]) (range 1 3) (last [ 1 2 ]) (init [ 1 2 ]) (reverseList [ 1 2 ]) ]`:      `[[1,2],[1,2,3],[1,2,3],2,[1],[2,1]]`,
		`[ (take 2 [ 1 2 3 ]) (drop 2 [ 1 2 3 ]) (count (x: x > 1) [ 1 2 3 ]) (findFirst (x: x > 1) 0 [ 1 2 3 ]) (sum [ 1 2 ]) ]`: `[[1,2],[3],2,2,3]`,
		`[ (imap0 (i: v: i + v) [ 10 20 ]) (imap1 (i: v: i + v) [ 10 20 ]) (zipListsWith (a: b: a + b) [ 1 2 ] [ 3 4 ]) ]`:        `[[10,21],[11,22],[4,6]]`,
		`zipAttrsWith (n: vs: vs) [ { a = 1; } { a = 2; b = 3; } ]`:                                                               `{"a":[1,2],"b":[3]}`,
		`foldAttrs (n: a: [ n ] ++ a) [ ] [ { a = 1; } { a = 2; } ]`:                                                              `{"a":[1,2]}`,
		`mapAttrsRecursive (p: v: builtins.concatStringsSep "." p) { a.b = 1; }`:                                                  `{"a":{"b":"a.b"}}`,
		`collect builtins.isInt { a.b = 1; c = "x"; }`:                                                                            `[1]`,
		`groupBy (x: x.k) [ { k = "a"; } { k = "b"; } { k = "a"; } ]`:                                                             `{"a":[{"k":"a"},{"k":"a"}],"b":[{"k":"b"}]}`,
		`[ (subtractLists [ 1 ] [ 1 2 ]) (intersectLists [ 1 ] [ 1 2 ]) (remove 1 [ 1 2 ]) (toList 1) ]`:                          `[[2],[1],[2],[1]]`,
		`[ (attrsets.filterAttrs (n: v: true) { a = 1; }) (lists.head [ 1 ]) (strings.optionalString true "x") (trivial.id 1) ]`:  `[{"a":1},1,"x",1]`,
		`[ (pipe 1 [ (x: x + 1) (x: x * 2) ]) (boolToString true) (max 1 2) (min 1 2) (mod 7 3) (flip builtins.sub 1 3) ]`:        `[4,"true",2,1,1,2]`,
	}
	dir := t.TempDir()
	lib := filepath.Join(dir, "lib.nix")
	if err := os.WriteFile(lib, []byte(Lib), 0o644); err != nil {
		t.Fatal(err)
	}
	var expr strings.Builder
	expr.WriteString("with import " + lib + "; [\n")
	var order []string
	for call := range calls {
		order = append(order, call)
		expr.WriteString("(" + call + ")\n")
	}
	expr.WriteString("]")
	out, err := nixeval.Run(context.Background(), nixeval.Command, []string{"--eval", "--strict", "--json", "--expr", expr.String()}, nil)
	if err != nil {
		t.Fatalf("nix-instantiate: %v", err)
	}
	var results []json.RawMessage
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatal(err)
	}
	for i, call := range order {
		if string(results[i]) != calls[call] {
			t.Errorf("lib.%s\ngot  %s\nwant %s", call, results[i], calls[call])
		}
	}
}

func TestNixTimeout(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "slow.nix")
	if err := os.WriteFile(file, []byte(`{infrastructure, lib}: builtins.seq (builtins.length (builtins.genList (x: x * x) 100000000)) infrastructure`), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Load(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.(*NixAugmenter).Timeout = 200 * time.Millisecond
	if _, err := a.Apply(context.Background(), testInfra(t)); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("got %v, want the evaluation stopped", err)
	}
}

// blockingEval is a NixEvaluator that returns only when its context is done.
type blockingEval struct{ started chan struct{} }

func (b blockingEval) EvalJSON(ctx context.Context, _ string, _ []byte) ([]byte, error) {
	close(b.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestNixApplyCancel checks that the context given to Apply reaches the
// evaluator (issue 8, defect 6: it was a field set at Load time).
func TestNixApplyCancel(t *testing.T) {
	t.Parallel()
	eval := blockingEval{started: make(chan struct{})}
	a, err := Load("testdata/augment.nix", Options{Nix: eval})
	if err != nil {
		t.Fatal(err)
	}
	infra := testInfra(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.Apply(ctx, infra)
		done <- err
	}()
	<-eval.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("want an error wrapping context.Canceled, got %v", err)
	}
}

// TestNixExtraParams: --extra-params reaches a Nix augmentation model (the
// arguments it declares), as the original's extraParams; without them the
// model cannot be called.
func TestNixExtraParams(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, extra string
		wantErr     string
		wantZone    any
	}{
		{name: "given", extra: `{ zoneOf = n: "z-" + n; unused = 1; }`, wantZone: "z-test1"},
		{name: "missing", extra: "", wantErr: "zoneOf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Load("testdata/extraparams.nix", Options{ExtraParams: c.extra})
			if err != nil {
				t.Fatal(err)
			}
			out, err := a.Apply(context.Background(), testInfra(t))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out["test1"].Properties["zone"]; got != c.wantZone {
				t.Errorf("zone %v, want %v", got, c.wantZone)
			}
		})
	}
}
