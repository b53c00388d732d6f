{
  "ports" = {
    "testService2" = 8001;
    "testService3" = 8002;
  };
  "portConfiguration" = {
    "targetConfigs" = {
      "testtarget2" = {
        "lastPort" = 8002;
        "minPort" = 8000;
        "maxPort" = 9000;
        "servicesToPorts" = {
          "testService2" = 8001;
          "testService3" = 8002;
        };
      };
    };
  };
}