{
  properties = {
    "hostname" = "machine1";
    "mem" = "377648";
    "supportedTypes" = [ "process" "wrapper" ];
  };
  containers = {
    mysql-database = {
      "mysqlPort" = "3306";
    };
  };
}
