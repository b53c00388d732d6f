package dist_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// nixEval evaluates a Nix expression (in the dist directory, so relative
// paths reach the repository) strictly and decodes its JSON value into v.
// It returns nix-instantiate's error output when the evaluation fails.
func nixEval(t *testing.T, expr string, v any, args ...string) (stderr string, ok bool) {
	t.Helper()
	nix := requireTool(t, "nix-instantiate")
	cmd := exec.Command(nix, append([]string{"--eval", "--strict", "--json", "-E", expr}, args...)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return errb.String(), false
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("nix-instantiate printed %q: %v", out, err)
	}
	return "", true
}

// stubLib is the part of nixpkgs' lib that nix/package.nix and flake.nix use.
const stubLib = `rec {
  filterAttrs = pred: set: builtins.listToAttrs (builtins.filter (x: pred x.name x.value)
    (map (name: { inherit name; value = set.${name}; }) (builtins.attrNames set)));
  cleanSourceWith = args: args;
  concatStringsSep = builtins.concatStringsSep;
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
  mkDefault = v: v;
}`

// TestNixPackageWithStubBuildGoModule evaluates nix/package.nix (and
// default.nix, which calls it) with a buildGoModule that returns its
// arguments: the build must cover every command, install the units with
// their paths rewritten and generate the man pages and completions, and
// keep bin/ of a checkout out of the source.
func TestNixPackageWithStubBuildGoModule(t *testing.T) {
	t.Parallel()
	expr := `let
  lib = ` + stubLib + `;
  pkg = import ../nix/package.nix { inherit lib; buildGoModule = args: args; };
in {
  inherit (pkg) pname subPackages vendorHash doCheck postInstall;
  mainProgram = pkg.meta.mainProgram;
  keepsGoMod = pkg.src.filter (toString ../go.mod) "regular";
  keepsBin = pkg.src.filter (toString ../bin) "directory";
  defaultNix = import ../default.nix { pkgs.callPackage = path: args: toString path; };
}`
	var got struct {
		Pname, VendorHash, PostInstall, MainProgram, DefaultNix string
		SubPackages                                             []string
		DoCheck, KeepsGoMod, KeepsBin                           bool
	}
	if stderr, ok := nixEval(t, expr, &got); !ok {
		t.Fatalf("evaluating nix/package.nix: %s", stderr)
	}
	var want []string
	for _, c := range commands(t) {
		want = append(want, "cmd/"+c)
	}
	sort.Strings(got.SubPackages)
	if !reflect.DeepEqual(got.SubPackages, want) {
		t.Errorf("subPackages = %q, want %q", got.SubPackages, want)
	}
	for _, s := range []string{"dist/systemd/*.service", "--replace-fail /usr/bin/dydisnix- \"$out/bin/dydisnix-\"", "go run ./dist/gen", "-man", "-bash", "-zsh", "-fish"} {
		if !strings.Contains(got.PostInstall, s) {
			t.Errorf("postInstall lacks %q:\n%s", s, got.PostInstall)
		}
	}
	if !got.KeepsGoMod || got.KeepsBin {
		t.Errorf("source filter: keeps go.mod %v (want true), keeps bin/ %v (want false)", got.KeepsGoMod, got.KeepsBin)
	}
	if !strings.HasSuffix(got.DefaultNix, "/nix/package.nix") {
		t.Errorf("default.nix calls %q, want nix/package.nix", got.DefaultNix)
	}
	if got.Pname != "dydisnix" || got.MainProgram != "dydisnix-self-adapt" {
		t.Errorf("pname %q, mainProgram %q", got.Pname, got.MainProgram)
	}
	if !strings.HasPrefix(got.VendorHash, "sha256-") {
		t.Errorf("vendorHash %q is not an SRI sha256 hash", got.VendorHash)
	}
}

// TestNixVendorHash computes the vendor hash as buildGoModule does — the
// NAR hash of the directory `go mod vendor` writes — and compares it with
// nix/package.nix's vendorHash, so a change of go.sum cannot leave the Nix
// build with a stale hash. (Assumes nixpkgs' Go writes the same
// vendor/modules.txt as this one.)
func TestNixVendorHash(t *testing.T) {
	t.Parallel()
	nixHash := requireTool(t, "nix-hash")
	var got struct{ VendorHash string }
	expr := `{ vendorHash = (import ../nix/package.nix { lib = ` + stubLib + `; buildGoModule = args: args; }).vendorHash; }`
	if stderr, ok := nixEval(t, expr, &got); !ok {
		t.Fatalf("evaluating nix/package.nix: %s", stderr)
	}
	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command("go", "mod", "vendor", "-o", vendor)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	out, err := exec.Command(nixHash, "--type", "sha256", vendor).Output()
	if err != nil {
		t.Fatalf("nix-hash: %v", err)
	}
	sum, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("nix-hash printed %q: %v", out, err)
	}
	want := "sha256-" + base64.StdEncoding.EncodeToString(sum)
	if got.VendorHash != want {
		t.Errorf("nix/package.nix: vendorHash = %q, but go.sum's modules hash to %q: update it", got.VendorHash, want)
	}
}

// TestNixFlakeWithStubNixpkgs calls flake.nix's outputs with a stub nixpkgs
// input: a package per system, an overlay, and a NixOS module that imports
// nix/module.nix with the flake's package as the default.
func TestNixFlakeWithStubNixpkgs(t *testing.T) {
	t.Parallel()
	expr := `let
  lib = ` + stubLib + `;
  pkgs = { callPackage = path: args: { path = toString path; inherit args; }; stdenv.hostPlatform.system = "x86_64-linux"; };
  nixpkgs = { inherit lib; legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs); };
  self = (import ../flake.nix).outputs { inherit self nixpkgs; } // { shortRev = "0123abc"; };
  module = self.nixosModules.default { inherit pkgs; };
in {
  systems = builtins.attrNames self.packages;
  default = self.packages.x86_64-linux.default;
  overlay = (self.overlays.default pkgs { }).dydisnix;
  imports = map toString module.imports;
  package = module.services.dydisnix.package;
}`
	type call struct {
		Path string
		Args struct{ Version string }
	}
	var got struct {
		Systems                   []string
		Default, Overlay, Package call
		Imports                   []string
	}
	if stderr, ok := nixEval(t, expr, &got); !ok {
		t.Fatalf("evaluating flake.nix: %s", stderr)
	}
	for what, c := range map[string]call{"packages.default": got.Default, "overlay": got.Overlay, "module's package": got.Package} {
		if !strings.HasSuffix(c.Path, "/nix/package.nix") || c.Args.Version != "0123abc" {
			t.Errorf("%s = %+v, want nix/package.nix at version 0123abc", what, c)
		}
	}
	if len(got.Imports) != 1 || !strings.HasSuffix(got.Imports[0], "/nix/module.nix") {
		t.Errorf("nixosModules.default imports %q, want nix/module.nix", got.Imports)
	}
	if !reflect.DeepEqual(got.Systems, []string{"aarch64-linux", "x86_64-linux"}) {
		t.Errorf("packages for %q", got.Systems)
	}
}

// moduleSettings set the NixOS module as unitEnv sets the units.
var moduleSettings = map[string]any{
	"agent": map[string]any{"enable": true, "listen": "0.0.0.0:7420", "interfaces": []string{"eth0"},
		"extraArgs": []string{"--log-level", "debug"}},
	"selfAdapt": map[string]any{"enable": true, "services": "/etc/dydisnix/services.nix",
		"qos": "builtin:by-type-round-robin", "interfaces": []string{"eth0"},
		"augment": "/etc/dydisnix/augment.yaml", "extraArgs": []string{"--ports", "/var/lib/dydisnix/ports.json"}},
	"publisher": map[string]any{"enable": true, "interfaces": []string{"eth0"},
		"extraArgs": []string{"--endpoint", "http://192.0.2.10:7420"}},
}

// nixosService is what the module defines for one systemd service.
type nixosService struct {
	Description                         string
	Documentation, Wants, After, Before []string
	WantedBy                            []string `json:"wantedBy"`
	ServiceConfig                       map[string]any
}

// evalModule evaluates nix/module.nix with settings through the stub module
// system of testdata/nixos-stub.nix.
func evalModule(t *testing.T, settings any, v any) (string, bool) {
	t.Helper()
	b, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "settings.json")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	expr := `import ./testdata/nixos-stub.nix { module = ../nix/module.nix; settings = builtins.fromJSON (builtins.readFile ` + f + `); }`
	return nixEval(t, expr, v)
}

// TestNixOSModuleWithStubModuleSystem evaluates the NixOS module with the
// real nix-instantiate but a stub of the module system (NixOS needs
// nixpkgs, which CI cannot fetch): the options are declared with types and
// descriptions, and the services it defines mirror the unit files — the
// same ExecStart under the same settings, the same credentials, hardening,
// ordering and stop behaviour.
func TestNixOSModuleWithStubModuleSystem(t *testing.T) {
	t.Parallel()
	var got struct {
		Options []struct {
			Name, Type, Description string
		}
		Config struct {
			Systemd struct{ Services map[string]nixosService }
		}
	}
	if stderr, ok := evalModule(t, moduleSettings, &got); !ok {
		t.Fatalf("evaluating nix/module.nix: %s", stderr)
	}
	declared := map[string]bool{}
	for _, o := range got.Options {
		declared[o.Name] = true
		if o.Type == "" || o.Description == "" {
			t.Errorf("option %s: type %q, description %q: both are required", o.Name, o.Type, o.Description)
		}
	}
	for _, name := range []string{"services.dydisnix.package", "services.dydisnix.agent.enable",
		"services.dydisnix.selfAdapt.enable", "services.dydisnix.publisher.enable"} {
		if !declared[name] {
			t.Errorf("option %s not declared", name)
		}
	}
	all := units(t)
	if len(got.Config.Systemd.Services) != len(all) {
		t.Errorf("the module defines %d services, dist/systemd has %d units", len(got.Config.Systemd.Services), len(all))
	}
	for file, u := range all {
		name := strings.TrimSuffix(file, ".service")
		s, ok := got.Config.Systemd.Services[name]
		if !ok {
			t.Errorf("the module defines no systemd.services.%s", name)
			continue
		}
		compareService(t, file, u, s)
	}
}

// compareService reports where the module's service s differs from unit u.
func compareService(t *testing.T, file string, u unitFile, s nixosService) {
	t.Helper()
	same := func(what string, unit, nixos []string) {
		if len(unit) == 0 && len(nixos) == 0 {
			return
		}
		if !reflect.DeepEqual(unit, nixos) {
			t.Errorf("%s: %s: unit %q, NixOS module %q", file, what, unit, nixos)
		}
	}
	same("Description", u["Unit"]["Description"], []string{s.Description})
	same("Documentation", u.words("Unit", "Documentation"), s.Documentation)
	same("Wants", u.words("Unit", "Wants"), s.Wants)
	same("After", u.words("Unit", "After"), s.After)
	same("Before", u.words("Unit", "Before"), s.Before)
	same("WantedBy", u.words("Install", "WantedBy"), s.WantedBy)

	unitExec := execStart(t, u, unitEnv[file])
	unitExec[0] = filepath.Base(unitExec[0])
	nixExec := strings.Fields(s.ServiceConfig["ExecStart"].(string))
	nixExec[0] = filepath.Base(nixExec[0])
	same("ExecStart", unitExec, nixExec)

	for key, vals := range u["Service"] {
		switch key {
		case "ExecStart":
		case "EnvironmentFile": // the module's options replace it
			if _, ok := s.ServiceConfig[key]; ok {
				t.Errorf("%s: the NixOS module sets %s", file, key)
			}
		default:
			same(key, vals, values(s.ServiceConfig[key]))
		}
	}
	for key := range s.ServiceConfig {
		if _, ok := u["Service"][key]; !ok {
			t.Errorf("%s: the NixOS module sets %s, the unit does not", file, key)
		}
	}
}

// values turns a serviceConfig value (a string or a list) into a list.
func values(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			out[i], _ = x.(string)
		}
		return out
	}
	return nil
}

// TestNixOSModuleRejectsBadSettings checks the option declarations catch
// what NixOS would: an option that does not exist, a value of the wrong
// type (a word systemd would split or expand), a required option unset.
func TestNixOSModuleRejectsBadSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings any
		want     string
	}{
		{"misspelt option", map[string]any{"agent": map[string]any{"enable": true, "interface": []string{"eth0"}}},
			"The option `services.dydisnix.agent.interface' does not exist."},
		{"interface with a space", map[string]any{"agent": map[string]any{"enable": true, "interfaces": []string{"eth 0"}}},
			"The option `services.dydisnix.agent.interfaces' is not of type"},
		{"token file with a specifier", map[string]any{"selfAdapt": map[string]any{"enable": true, "services": "/s.nix",
			"interfaces": []string{"eth0"}, "tokenFile": "/etc/%H.token"}},
			"The option `services.dydisnix.selfAdapt.tokenFile' is not of type"},
		{"services model unset", map[string]any{"selfAdapt": map[string]any{"enable": true, "interfaces": []string{"eth0"}}},
			"The option `services.dydisnix.selfAdapt.services' is used but not defined."},
		{"enable not a bool", map[string]any{"publisher": map[string]any{"enable": "yes"}},
			"The option `services.dydisnix.publisher.enable' is not of type `bool'."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var v any
			stderr, ok := evalModule(t, tc.settings, &v)
			if ok {
				t.Fatalf("evaluated to %v, want the error %q", v, tc.want)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("error %q, want it to contain %q", stderr, tc.want)
			}
		})
	}
}
