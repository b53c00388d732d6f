{infrastructure}:

{
  api = [
    infrastructure.test2
  ];
  web = {
    targets = [
      { target = infrastructure.test1; container = "process"; }
      { target = infrastructure.test2; }
    ];
  };
}
