{
  "ports" = {
    "testService1" = 3001;
    "testService2" = 3002;
    "testService3" = 3003;
  };
  "portConfiguration" = {
    "globalConfig" = {
      "lastPort" = 3003;
      "minPort" = 3000;
      "maxPort" = 4000;
      "servicesToPorts" = {
        "testService1" = 3001;
        "testService2" = 3002;
        "testService3" = 3003;
      };
    };
    "targetConfigs" = {
    };
  };
}