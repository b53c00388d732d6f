{
  m000 = { properties = { hostname = "m000"; mem = 2573; supportedTypes = [ "process" "wrapper" "mysql-database" "apache-webapplication" ]; cost = 52; }; };
  m001 = { properties = { hostname = "m001"; mem = 2046; supportedTypes = [ "process" "wrapper" "mysql-database" ]; cost = 79; }; };
  m002 = { properties = { hostname = "m002"; mem = 1722; supportedTypes = [ "process" "wrapper" "mysql-database" "apache-webapplication" "tomcat-webapplication" ]; cost = 100; }; };
  m003 = { properties = { hostname = "m003"; mem = 1386; supportedTypes = [ "process" "wrapper" "mysql-database" "apache-webapplication" ]; cost = 38; }; };
  m004 = { properties = { hostname = "m004"; mem = 1917; supportedTypes = [ "process" "wrapper" "mysql-database" "apache-webapplication" "tomcat-webapplication" ]; cost = 75; }; };
}
