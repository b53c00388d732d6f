# The web system the demo deploys (`dydisnix-testbed demo`), in the shape of
# the seeds' realistic example (php-sbexampleapps), as a Disnix services
# model; services.yaml is the same in YAML. The databases' pkg are component
# directories holding mysql-databases/<db>.sql (the mysql-database module
# names the database after the directory); the applications run the webapp
# program `make build` puts into bin/examples/. Nothing here needs nixpkgs.
{ system, distribution, invDistribution, pkgs }:

let
  database = name: {
    inherit name;
    type = "mysql-database";
    pkg = ../../testbed/services/websystem + "/${name}";
    stateful = true;
    deployState = true;
  };
  app = name: appName: port: extra: {
    inherit name appName port;
    type = "process";
    pkg = ../../bin/examples/webapp;
    healthCheck = "http://127.0.0.1:${toString port}/healthz";
    usersDb = "usersdb";
  } // extra;
in
rec {
  usersdb = database "usersdb";
  cmsdb = database "cmsdb";
  homeworkdb = database "homeworkdb";

  users = app "users" "Users" 7101 {
    db = "usersdb"; table = "users";
    dependsOn = { inherit usersdb; };
  };
  # The applications keep uploaded files, which move with them.
  cms = app "cms" "CMS" 7102 {
    db = "cmsdb"; table = "records";
    dependsOn = { inherit usersdb cmsdb; };
    stateful = true; deployState = true;
  };
  homework = app "homework" "Homework" 7103 {
    db = "homeworkdb"; table = "records";
    dependsOn = { inherit usersdb homeworkdb; };
    stateful = true; deployState = true;
  };
  # The portal links to the applications: connectsTo, no activation order.
  portal = app "portal" "Portal" 7100 {
    dependsOn = { inherit usersdb; };
    connectsTo = { inherit users cms homework; };
  };
}
