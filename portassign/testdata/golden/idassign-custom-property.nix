{
  "ids" = {
    "gids" = {
      "a" = 100;
      "b" = 101;
    };
    "uids" = {
      "a" = 10;
    };
  };
  "lastAssignments" = {
    "gids" = 101;
    "uids" = 10;
  };
}