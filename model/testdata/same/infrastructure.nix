{
  test1 = {
    properties = { hostname = "test1"; mem = 524288; load = 0.1; zone = "eu"; supportedTypes = [ "process" ]; };
    containers = { process = { }; mysql-database.mysqlPort = 3306; };
    system = "x86_64-linux";
  };
  test2 = {
    properties = { hostname = "test2"; mem = 262144; load = 1.0e-3; zone = "us"; supportedTypes = [ "process" "mysql-database" ]; };
    numOfCores = 2;
  };
}
