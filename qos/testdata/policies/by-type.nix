{
  steps = [
    { filter = "mapAttrOnList"; serviceProperty = "type"; targetPropertyList = "supportedTypes"; }
    { filter = "divideRoundRobin"; name = "spread"; }
  ];
}
