{ system, pkgs, distribution, invDistribution }:

rec {
  api = {
    name = "api";
    type = "process";
    pkg = pkgs.callPackage ./api.nix { };
    stateful = false;
    requiresUniqueIdsFor = [ "ports" ];
    note = "quote \" backslash \\ dollar \${x} newline\n";
  };
  web = {
    name = "web";
    type = "process";
    pkg = { api }: pkgs.stdenv.mkDerivation { name = "web"; };
    dependsOn = { inherit api; };
    connectsTo = { };
    requireMem = 1024;
    weight = 0.5;
    ratio = 2.0;
    tags = [ "front" "public" ];
    meta = { owner = "ops"; level = 3; };
  };
}
