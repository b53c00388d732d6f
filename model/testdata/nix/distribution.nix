{infrastructure}:

{
  db = [ infrastructure.test1 ];
  api = [ infrastructure.test1 infrastructure.test2 ];
  server = {
    targets = [
      { target = infrastructure.test2; container = "process-secondary"; }
      { target = infrastructure."edge-3"; }
    ];
  };
  web = [ infrastructure."edge-3" ];
}
