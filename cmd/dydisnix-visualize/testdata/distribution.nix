{infrastructure}:
{
  store = [ infrastructure.test1 ];
  web = [ infrastructure.test1 infrastructure.test2 ];
  ping = [ infrastructure.test2 ];
  pong = [ infrastructure.test3 ];
}
