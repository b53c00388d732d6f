# The example system (the one `dydisnix-testbed demo` deploys), as a Disnix
# services model. `pkg` is a path: dydisnix writes it as its absolute path
# and the agent deployer ships and runs that binary (`make build` puts the
# example services into bin/examples/). Nothing here needs nixpkgs.
{ system, distribution, invDistribution, pkgs }:

let
  service = name: bin: port: extra: {
    inherit name port;
    type = "process";
    pkg = ../bin/examples + "/${bin}";
    healthCheck = "http://127.0.0.1:${toString port}/healthz";
  } // extra;
in
rec {
  # A key-value store whose data moves with it.
  kvstore = service "kvstore" "kvstore" 7001 { stateful = true; deployState = true; };
  # A web front end on the store.
  webfront = service "webfront" "webfront" 7002 { dependsOn = { inherit kvstore; }; };
  # Two peers that talk to each other (connectsTo: no activation order).
  peerA = service "peerA" "peer" 7003 { connectsTo = { inherit peerB; }; };
  peerB = service "peerB" "peer" 7004 { connectsTo = { inherit peerA; }; };
  # A Chord-style ring.
  chord-bootstrap = service "chord-bootstrap" "chord" 7005 { };
  chord-node1 = service "chord-node1" "chord" 7006 { dependsOn = { inherit chord-bootstrap; }; };
  chord-node2 = service "chord-node2" "chord" 7007 { dependsOn = { inherit chord-bootstrap; }; };
}
