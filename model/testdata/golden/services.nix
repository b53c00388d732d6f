{
  api = {
    name = "api";
    note = "quote \" backslash \\ dollar \${x} newline\n";
    requiresUniqueIdsFor = [
      "ports"
    ];
    stateful = false;
    type = "process";
  };
  web = {
    connectsTo = [ ];
    dependsOn = [
      "api"
    ];
    meta = {
      level = 3;
      owner = "ops";
    };
    name = "web";
    ratio = 2.0;
    requireMem = 1024;
    tags = [
      "front"
      "public"
    ];
    type = "process";
    weight = 0.5;
  };
}
