{
  test1 = {
    properties = {
      hostname = "test1";
    };
    containers = {
      tomcat-webapplication = {
        tomcatPort = 8080;
      };
    };
    system = "x86_64-linux";
  };

  test2 = {
    properties = {
      hostname = "test2";
    };
    containers = {
      tomcat-webapplication = {
        tomcatPort = 8080;
      };
      mysql-database = {
        mysqlPort = 3306;
        mysqlUsername = "root";
        mysqlPassword = builtins.readFile ./mysqlpw;
      };
    };
    system = "x86_64-linux";
  };
}
