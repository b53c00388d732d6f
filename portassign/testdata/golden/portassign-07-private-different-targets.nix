{
  "ports" = {
    "testService2" = 8001;
    "testService3" = 8001;
  };
  "portConfiguration" = {
    "targetConfigs" = {
      "testtarget1" = {
        "lastPort" = 8001;
        "minPort" = 8000;
        "maxPort" = 9000;
        "servicesToPorts" = {
          "testService2" = 8001;
        };
      };
      "testtarget2" = {
        "lastPort" = 8001;
        "minPort" = 8000;
        "maxPort" = 9000;
        "servicesToPorts" = {
          "testService3" = 8001;
        };
      };
    };
  };
}