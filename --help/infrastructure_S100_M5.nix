{
  m000 = { properties = { hostname = "m000"; mem = 16524; supportedTypes = [ "process" "wrapper" "mysql-database" "apache-webapplication" ]; cost = 53; }; };
  m001 = { properties = { hostname = "m001"; mem = 12462; supportedTypes = [ "process" "tomcat-webapplication" ]; cost = 67; }; };
  m002 = { properties = { hostname = "m002"; mem = 9754; supportedTypes = [ "process" "mysql-database" "apache-webapplication" "tomcat-webapplication" ]; cost = 44; }; };
  m003 = { properties = { hostname = "m003"; mem = 10468; supportedTypes = [ "process" "mysql-database" ]; cost = 64; }; };
  m004 = { properties = { hostname = "m004"; mem = 11357; supportedTypes = [ "process" "mysql-database" ]; cost = 49; }; };
}
