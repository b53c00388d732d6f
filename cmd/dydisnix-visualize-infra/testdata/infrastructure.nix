# The original's tests/visualize/infrastructure.nix; --extra-params may add
# containers to test2.
{ extraContainers ? {} }:
{
  test1 = { properties = { hostname = "test1"; description = "First test machine"; }; };
  test2 = {
    properties = { hostname = "test2"; description = "Second test machine"; };
    containers = {
      process = {};
      wrapper = {};
      mysql-database = { mysqlPort = 3306; };
      tomcat-webapplication = {};
    } // extraContainers;
  };
}
