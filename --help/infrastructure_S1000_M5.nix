{
  m000 = { properties = { hostname = "m000"; mem = 167435; supportedTypes = [ "process" "apache-webapplication" ]; cost = 80; }; };
  m001 = { properties = { hostname = "m001"; mem = 220276; supportedTypes = [ "process" "wrapper" "tomcat-webapplication" ]; cost = 99; }; };
  m002 = { properties = { hostname = "m002"; mem = 110799; supportedTypes = [ "process" "wrapper" "apache-webapplication" ]; cost = 84; }; };
  m003 = { properties = { hostname = "m003"; mem = 206083; supportedTypes = [ "process" "wrapper" "mysql-database" ]; cost = 30; }; };
  m004 = { properties = { hostname = "m004"; mem = 193125; supportedTypes = [ "process" "wrapper" ]; cost = 98; }; };
}
