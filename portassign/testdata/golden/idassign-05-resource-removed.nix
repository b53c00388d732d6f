{
  "ids" = {
    "uids" = {
    };
  };
}