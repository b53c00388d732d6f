{
  test1 = {
    containers = {
      mysql-database = {
        mysqlPort = 3306;
      };
      process = { };
    };
    properties = {
      hostname = "test1";
      load = 0.1;
      mem = 524288;
      supportedTypes = [
        "process"
      ];
      zone = "eu";
    };
    system = "x86_64-linux";
  };
  test2 = {
    numOfCores = 2;
    properties = {
      hostname = "test2";
      load = 0.001;
      mem = 262144;
      supportedTypes = [
        "process"
        "mysql-database"
      ];
      zone = "us";
    };
  };
}
