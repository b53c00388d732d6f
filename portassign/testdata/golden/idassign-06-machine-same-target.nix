{
  "ids" = {
    "ports" = {
      "testService2" = 3000;
      "testService3" = 3001;
    };
  };
  "lastAssignmentsPerTarget" = {
    "testtarget2" = {
      "ports" = 3001;
    };
  };
}