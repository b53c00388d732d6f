# The testbed's example system as a Disnix services model (the same system
# as services.json). pkg is a path to the built binary (make build puts them
# in bin/examples/ at the top of the repository); the dydisnix agent runs it as a
# supervised process. `ids` are the assigned ports when the file is given
# (dydisnix-id-assign --ids), as in Disnix's examples.
{ system, pkgs, distribution, invDistribution, ids ? { } }:

let
  port = name: default: if ids ? ports && ids.ports ? ${name} then ids.ports.${name} else default;
  process = name: attrs: {
    inherit name;
    type = "process";
    requiresUniqueIdsFor = [ "ports" ];
  } // attrs;
in
rec {
  kvstore = process "kvstore" {
    pkg = ../../../bin/examples/kvstore;
    description = "stateful HTTP key-value store; persists to its state directory";
    deployState = true;
    stateful = true;
    port = port "kvstore" 7001;
    requireMem = 256;
  };

  webfront = process "webfront" {
    pkg = ../../../bin/examples/webfront;
    description = "web front end proxying /kv/ to the store";
    dependsOn = { inherit kvstore; };
    port = port "webfront" 7002;
    requireMem = 128;
  };

  peerA = process "peerA" {
    pkg = ../../../bin/examples/peer;
    description = "pings peerB; connectsTo allows the cycle";
    connectsTo = { inherit peerB; };
    port = port "peerA" 7003;
    requireMem = 64;
  };

  peerB = process "peerB" {
    pkg = ../../../bin/examples/peer;
    description = "pings peerA; connectsTo allows the cycle";
    connectsTo = { inherit peerA; };
    port = port "peerB" 7004;
    requireMem = 64;
  };

  chordBootstrap = process "chordBootstrap" {
    pkg = ../../../bin/examples/chord;
    description = "first node of the Chord ring";
    port = port "chordBootstrap" 7005;
    requireMem = 64;
  };

  chordNode1 = process "chordNode1" {
    pkg = ../../../bin/examples/chord;
    description = "Chord node joining via the bootstrap node";
    dependsOn = { inherit chordBootstrap; };
    port = port "chordNode1" 7006;
    instanceSuffix = "1";
    requireMem = 64;
  };

  chordNode2 = process "chordNode2" {
    pkg = ../../../bin/examples/chord;
    description = "Chord node joining via the bootstrap node";
    dependsOn = { inherit chordBootstrap; };
    port = port "chordNode2" 7007;
    instanceSuffix = "2";
    requireMem = 64;
  };

  chordNode3 = process "chordNode3" {
    pkg = ../../../bin/examples/chord;
    description = "Chord node joining via the bootstrap node";
    dependsOn = { inherit chordBootstrap; };
    port = port "chordNode3" 7008;
    instanceSuffix = "3";
    requireMem = 64;
  };
}
