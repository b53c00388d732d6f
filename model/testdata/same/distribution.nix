{infrastructure}:
{
  api = [ infrastructure.test2 ];
  web = [ { target = infrastructure.test1; container = "process"; } infrastructure.test2 ];
}
