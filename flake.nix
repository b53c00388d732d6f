{
  description = "dydisnix: Dynamic Disnix, a self-adaptive deployment loop";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      version = self.shortRev or "dirty";
    in
    {
      packages = forAllSystems (pkgs: rec {
        dydisnix = pkgs.callPackage ./nix/package.nix { inherit version; };
        default = dydisnix;
      });

      overlays.default = final: prev: {
        dydisnix = final.callPackage ./nix/package.nix { inherit version; };
      };

      # services.dydisnix.{agent,selfAdapt,publisher}; the package defaults to
      # this flake's.
      nixosModules.default = { pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.dydisnix.package = nixpkgs.lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
    };
}
