{
  m000 = { properties = { hostname = "m000"; mem = 533492; supportedTypes = [ "process" "tomcat-webapplication" ]; cost = 85; }; };
  m001 = { properties = { hostname = "m001"; mem = 1079890; supportedTypes = [ "process" "wrapper" ]; cost = 10; }; };
  m002 = { properties = { hostname = "m002"; mem = 696180; supportedTypes = [ "process" "wrapper" ]; cost = 11; }; };
  m003 = { properties = { hostname = "m003"; mem = 1138387; supportedTypes = [ "process" "mysql-database" "apache-webapplication" "tomcat-webapplication" ]; cost = 56; }; };
  m004 = { properties = { hostname = "m004"; mem = 790817; supportedTypes = [ "process" "wrapper" ]; cost = 10; }; };
}
