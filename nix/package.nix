# The dydisnix commands, built with buildGoModule, with their systemd units
# (ExecStart pointing into this package), man pages and bash/zsh/fish
# completions. default.nix and flake.nix call this file.
#
# vendorHash is the NAR hash (SRI form) of the directory `go mod vendor`
# writes for the current go.sum. After a change of go.mod or go.sum, the test
# TestNixVendorHash (go test ./dist) fails and prints the new value; it is
# computed as Nix computes it: `go mod vendor -o DIR`, then
# `nix-hash --type sha256 DIR` (or `nix hash path DIR`).
{ lib, buildGoModule, version ? "0-unstable" }:

let
  # The commands are the folders of cmd/.
  commands = builtins.attrNames
    (lib.filterAttrs (name: kind: kind == "directory") (builtins.readDir ../cmd));
in
buildGoModule {
  pname = "dydisnix";
  inherit version;

  src = lib.cleanSourceWith {
    src = ./..;
    # Build output and editor state of a checkout stay out of the source.
    filter = path: type: !(builtins.elem (baseNameOf path) [ "bin" "result" ".git" ]);
  };

  vendorHash = "sha256-JSj0GMfPF3XfOGHDFWA/Hnwk2cSXT2QmuXIWAwWKHqY=";

  subPackages = map (name: "cmd/${name}") commands;

  # The test suite needs root, network namespaces, Avahi and nix-instantiate
  # (see .ci/run); CI runs it, not the sandboxed build.
  doCheck = false;

  postInstall = ''
    for unit in dist/systemd/*.service; do
      install -Dm0644 "$unit" "$out/lib/systemd/system/$(basename "$unit")"
      substituteInPlace "$out/lib/systemd/system/$(basename "$unit")" \
        --replace-fail /usr/bin/dydisnix- "$out/bin/dydisnix-"
    done
    go run ./dist/gen -bin "$out/bin" -man "$out/share/man/man1" \
      -bash "$out/share/bash-completion/completions" \
      -zsh "$out/share/zsh/site-functions" \
      -fish "$out/share/fish/vendor_completions.d" \
      ${lib.concatStringsSep " " commands}
  '';

  meta = {
    description = "Dynamic Disnix: a self-adaptive deployment loop for service-oriented systems";
    homepage = "https://github.com/dydisnix/dydisnix";
    mainProgram = "dydisnix-self-adapt";
    platforms = lib.platforms.linux;
  };
}
