{infrastructure}:

{
  empty = [ ];
  plain = [
    infrastructure.t1
    infrastructure.x-y
  ];
  "quoted svc" = [
    infrastructure."with space"
  ];
  records = {
    targets = [
      { target = infrastructure."if"; container = "c\"\${x}"; }
      { target = infrastructure."\${t}"; }
    ];
  };
}
