{
  test1 = {
    properties = {
      hostname = "test1.example.org";
      mem = 524288;
      supportedTypes = [ "process" "mysql-database" ];
      load = 0.125;
    };
    containers.mysql-database = { mysqlPort = 3306; };
    system = "x86_64-linux";
  };
  test2 = {
    properties.hostname = "test2.example.org";
    properties.sshKey = ./bin/server;
    numOfCores = 2;
  };
  "edge-3" = {
    properties.address = "10.0.0.3";
    targetProperty = "address";
  };
}
