# nix-build: the dydisnix commands, units, man pages and completions.
#   nix-build                       # with <nixpkgs>
#   nix-build --arg pkgs 'import /path/to/nixpkgs { }'
# The NixOS module is nix/module.nix (imports = [ ./nix/module.nix ]).
{ pkgs ? import <nixpkgs> { } }:

pkgs.callPackage ./nix/package.nix { }
