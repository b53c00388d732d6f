{
  "ids" = {
    "ports" = {
      "testService1" = 3000;
      "testService2" = 3001;
      "testService3" = 3002;
    };
  };
  "lastAssignments" = {
    "ports" = 3002;
  };
}