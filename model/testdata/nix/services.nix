# A Disnix services model in the usual function form. pkg uses pkgs (which
# dydisnix never provides) and must never be forced beyond a type check.
{ system, distribution, invDistribution, pkgs }:

let
  customPkgs = import ./pkgs.nix { inherit pkgs system; };
in
rec {
  db = {
    name = "db";
    pkg = customPkgs.db;
    type = "mysql-database";
    deployState = true;
    stateful = true;
    requireMem = 262144;
    weight = 0.75;
  };

  api = rec {
    name = "api";
    pkg = customPkgs.api;
    dependsOn = {
      inherit db;
    };
    port = 3001;
    url = "http://localhost:${toString port}";
    type = "process";
    requiresUniqueIdsFor = [ "ports" ];
  };

  server = {
    name = "server";
    pkg = ./bin/server;
    dependsOn = {
      database = db;
      inherit api;
    };
    connectsTo = {
      inherit web;
    };
    type = "process";
  };

  web = {
    name = "web";
    pkg = "/usr/bin/true";
    connectsTo = {
      inherit server;
    };
    type = "systemd-unit";
    meta = { description = "the web front"; tags = [ "a" "b" ]; ratio = 1.0; };
  };

  cli = {
    name = "cli";
    pkg = pkgs.callPackage ./cli.nix { };
    type = "package";
  };
}
