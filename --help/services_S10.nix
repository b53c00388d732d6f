{system ? builtins.currentSystem, pkgs ? null, distribution ? {}, invDistribution ? {}}:

rec {
  s0000 = { name = "s0000"; type = "process"; requireMem = 476; };
  s0001 = { name = "s0001"; type = "mysql-database"; requireMem = 705; dependsOn = { inherit s0000; }; };
  s0002 = { name = "s0002"; type = "wrapper"; requireMem = 571; dependsOn = { inherit s0000 s0001; }; };
  s0003 = { name = "s0003"; type = "wrapper"; requireMem = 253; };
  s0004 = { name = "s0004"; type = "mysql-database"; requireMem = 681; dependsOn = { inherit s0001 s0002 s0003; }; };
  s0005 = { name = "s0005"; type = "apache-webapplication"; requireMem = 369; dependsOn = { inherit s0000 s0001 s0003; }; stateful = true; };
  s0006 = { name = "s0006"; type = "apache-webapplication"; requireMem = 605; };
  s0007 = { name = "s0007"; type = "process"; requireMem = 933; dependsOn = { inherit s0000 s0003 s0006; }; };
  s0008 = { name = "s0008"; type = "tomcat-webapplication"; requireMem = 779; dependsOn = { inherit s0005 s0007; }; };
  s0009 = { name = "s0009"; type = "wrapper"; requireMem = 81; dependsOn = { inherit s0008; }; };
}
