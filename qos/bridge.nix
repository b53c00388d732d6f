# Evaluates a QoS model of the original form
#   {services, infrastructure, initialDistribution, previousDistribution, filters, lib}: ...
# for qos/nixmodel.go; docs/qos.md ("QoS models in Nix") explains the design.
#
# The filters (the reference ones under their original names and formals)
# are computed in Go. In "fast" mode a filter returns a marker function
# whose result tree the Go side computes; in replay mode a filter looks its
# result up in the cache Go filled (files read lazily) and, when missing,
# aborts with a request that Go answers before evaluating again.
#
# nixmodel.go prefixes this function with `let lib = <augment/lib.nix>; in`.
{ qosFile
, filtersFile ? ""
, inputsFile
, cacheFile ? ""
, fast ? false
, token
, extraParams ? { }
}:
let
  inherit (builtins) isFunction isAttrs isList typeOf functionArgs intersectAttrs
    mapAttrs attrNames fromJSON readFile toJSON hashString filter head length;

  inputs = fromJSON (readFile inputsFile);
  # A distribution from Go: {lists, of}, each distinct list once (shared).
  unshare = d: mapAttrs (_: i: builtins.elemAt d.lists i) d.of;
  services = inputs.services;
  infrastructure = inputs.infrastructure;
  initialDistribution =
    if inputs.initial == null
    then (let targets = attrNames infrastructure; in mapAttrs (_: _: targets) services)
    else unshare inputs.initial;
  previousDistribution = inputs.previous;

  # key -> result distribution; each file is read only when its entry is used.
  cacheIndex = if cacheFile == "" then { } else fromJSON (readFile cacheFile);
  cache = mapAttrs (_: f: unshare (fromJSON (readFile f))) cacheIndex;

  # Values Go already knows are sent back by name instead of by content.
  distRefs = [ { n = "initial"; v = initialDistribution; } { n = "previous"; v = previousDistribution; } ]
    ++ map (k: { n = "cache:" + k; v = cache.${k}; }) (attrNames cache);
  refOf = role: v:
    let
      cands =
        if role == "services" then [ { n = "services"; v = services; } ]
        else if role == "infrastructure" then [ { n = "infrastructure"; v = infrastructure; } ]
        else if role == "distribution" || role == "previousDistribution" then distRefs
        else [ ];
      hits = filter (c: c.v == v) cands;
    in
    if hits == [ ] then null else (head hits).n;

  # Plain data as JSON (paths as strings, never copied to the store).
  enc = v:
    let t = typeOf v; in
    if t == "path" then toString v
    else if t == "lambda" then { __dydisnix_function = true; }
    else if t == "list" then map enc v
    else if t == "set" then mapAttrs (_: enc) v
    else v;

  recipeOf = v:
    let r = v token; in
    if isAttrs r && (r.__dydisnix_recipe or null) == token then r else null;

  encArg = role: v:
    if isFunction v then
      (let r = if fast then recipeOf v else null; in
       if r == null then { __dydisnix_function = true; } else encCall r)
    else
      (let ref = refOf role v; in if ref == null then enc v else { __dydisnix_ref = ref; });

  encCall = r: { __dydisnix_call = r.name; args = mapAttrs encArg r.args; };

  call = name: args:
    if fast then
      (x: if x == token then { __dydisnix_recipe = token; inherit name args; }
          else abort "dydisnix: the result of filters.${name} was used as a function")
    else
      let
        req = encCall { inherit name args; };
        key = hashString "sha256" (toJSON req);
      in
      if cache ? ${key} then cache.${key}
      else abort "__dydisnix_need__${key}:${toJSON req}__dydisnix_end__";

  # The reference filters, with the original's formals.
  referenceFilters = {
    createCartesianProduct = { services, infrastructure }@a: call "createCartesianProduct" a;
    mapAttrOnList = { distribution, services, infrastructure, serviceProperty, targetPropertyList }@a: call "mapAttrOnList" a;
    mapListOnAttr = { distribution, services, infrastructure, servicePropertyList, targetProperty }@a: call "mapListOnAttr" a;
    mapAttrOnAttr = { distribution, services, infrastructure, serviceProperty, targetProperty }@a: call "mapAttrOnAttr" a;
    mapStatefulToPrevious = { services, distribution, previousDistribution }@a: call "mapStatefulToPrevious" a;
    mapBoundServicesToPrevious = { services, distribution, previousDistribution }@a: call "mapBoundServicesToPrevious" a;
    divideRoundRobin = { distribution }@a: call "divideRoundRobin" a;
    order = { infrastructure, distribution, targetProperty }@a: call "order" a;
    divide = { strategy, services, infrastructure, distribution, serviceProperty, targetProperty }@a: call "divide" a;
    minsetcover = { services, infrastructure, distribution, targetProperty }@a: call "minsetcover" a;
    multiwaycut = { services, infrastructure, distribution }@a: call "multiwaycut" a;
    graphcol = { services, infrastructure }@a: call "graphcol" a;
  };

  # A function gets the arguments it declares (all of them when it declares
  # none by name, like `args: ...`), the --extra-params of those names too.
  withExtra = f: args:
    let declared = functionArgs f; all = extraParams // args; in
    if declared == { } then args else intersectAttrs declared all;

  filters =
    if filtersFile == "" then referenceFilters
    else
      let catalog = import filtersFile; in
      if !isFunction catalog then
        throw "the filter catalog ${filtersFile} is a ${typeOf catalog}, expected a function {pkgs, referenceFilters}: { name = filter; ... }"
      else
        let c = catalog (withExtra catalog { pkgs = { inherit lib; }; inherit referenceFilters; }); in
        if isAttrs c then c
        else throw "the filter catalog ${filtersFile} returned a ${typeOf c}, expected an attribute set of filters";

  model = import qosFile;
  result = model (withExtra model {
    inherit services infrastructure initialDistribution previousDistribution filters lib;
  });
in
if !isFunction model then
  { bad = "the QoS model is a ${typeOf model}, expected a function {services, infrastructure, initialDistribution, previousDistribution, filters, lib}: ..."; }
else { result = encArg "distribution" result; }
