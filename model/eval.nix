# Evaluates one dydisnix model file for `nix-instantiate --eval --strict --json`.
# Called by model/nix.go; see docs/model.md for the rules.
#
# The result is plain JSON data. Values JSON cannot carry exactly are wrapped
# in one-attribute markers that the Go side decodes:
#   { __dydisnix_float = [ m e ]; }        a float, exactly m * 2^e
#   { __dydisnix_nonfinite = true; }       an infinite or NaN float
#   { __dydisnix_function = true; }        a function (an error in a model)
#   { __dydisnix_derivation = "name"; }    a derivation (an error outside pkg)
#   { __dydisnix_target = { ... }; }       a distribution's target attribute set
#   { __dydisnix_noname = true; }          a dependency without a name
{ file
, kind
, infraFile ? ""
, extraParams ? { }
, defaultTargetProperty ? "hostname"
, inspectPkg ? true
}:
let
  inherit (builtins) typeOf isAttrs isList isFunction functionArgs intersectAttrs
    mapAttrs attrNames tryEval floor removeAttrs fromJSON readFile head elemAt;

  # dydisnix never imports nixpkgs. A model that only uses pkgs inside a
  # service's pkg still evaluates: pkg is inspected under tryEval and this
  # throw is catchable there.
  pkgs = throw "dydisnix: the model uses `pkgs` outside a service's `pkg`; dydisnix evaluates models without nixpkgs";

  # Calls a model function with the arguments it declares (all of them when
  # it declares none by name, like `args: ...`).
  callWith = f: args:
    if isFunction f then
      let declared = functionArgs f; in
      f (if declared == { } then args else intersectAttrs declared args)
    else f;

  # Calls a function whose arguments are optional: with {} when it declares
  # none by name.
  callPlain = f: args:
    if isFunction f then
      let declared = functionArgs f; in
      f (if declared == { } then { } else intersectAttrs declared args)
    else f;

  # Exact float encoding: |x| = m * 2^e with 2^52 <= m < 2^53. Scaling by
  # powers of two is exact in binary floating point.
  two20 = 1048576.0;
  two32 = 4294967296.0;
  two52 = 4503599627370496.0;
  two53 = 9007199254740992.0;
  norm = a: e:
    if a >= two53 * two32 then norm (a / two32) (e + 32)
    else if a >= two53 then norm (a / 2) (e + 1)
    else if a < two20 then norm (a * two32) (e - 32)
    else if a < two52 then norm (a * 2) (e - 1)
    else [ (floor a) e ];
  encFloat = x:
    if x != x || x - x != 0 then { __dydisnix_nonfinite = true; }
    else if x == 0 then { __dydisnix_float = [ 0 0 ]; }
    else
      let r = norm (if x < 0 then 0 - x else x) 0; in
      { __dydisnix_float = [ (if x < 0 then 0 - head r else head r) (elemAt r 1) ]; };

  # Converts any value to JSON data (paths to their absolute string, never
  # copied to the store).
  enc = v:
    let t = typeOf v; in
    if t == "float" then encFloat v
    else if t == "path" then toString v
    else if t == "lambda" then { __dydisnix_function = true; }
    else if t == "list" then map enc v
    else if t == "set" then
      (if (v.type or null) == "derivation" then { __dydisnix_derivation = v.name or "?"; }
      else mapAttrs (_: enc) v)
    else v;

  model = import file;

  # --- services: filterDerivations (dydisnix.md 1.2) ---
  nameOf = d:
    if isAttrs d then (if d ? name then enc d.name else { __dydisnix_noname = true; })
    else enc d;
  depNames = v:
    if isAttrs v then map (k: nameOf v.${k}) (attrNames v)
    else if isList v then map nameOf v
    else enc v;
  # pkg is kept only when it is a path (as its absolute path) or a string.
  # Anything else (a derivation, a function, something that needs pkgs) is
  # dropped; it is forced to weak head normal form only, under tryEval.
  pkgOf = s:
    let r = tryEval (typeOf s.pkg); in
    if !inspectPkg || !r.success then { }
    else if r.value == "path" then { pkg = toString s.pkg; }
    else if r.value == "string" then
      (let sv = tryEval s.pkg; in if sv.success then { pkg = sv.value; } else { })
    else { };
  filterService = s:
    if isAttrs s then
      mapAttrs (k: v: if k == "dependsOn" || k == "connectsTo" then depNames v else enc v)
        (removeAttrs s [ "pkg" ])
      // (if s ? pkg then pkgOf s else { })
    else enc s;
  services =
    let
      evaluated = callWith model ({
        distribution = { };
        invDistribution = { };
        system = builtins.currentSystem;
        inherit pkgs;
      } // extraParams);
    in
    if isAttrs evaluated then mapAttrs (_: filterService) evaluated else enc evaluated;

  # --- infrastructure and plain files ---
  plain = enc (callPlain model ({ system = builtins.currentSystem; inherit pkgs; } // extraParams));

  # --- distribution (dydisnix.md 1.4 b) ---
  infrastructure = if infraFile == "" then { } else fromJSON (readFile infraFile);
  target = t:
    if isAttrs t then
      let
        p = t.targetProperty or defaultTargetProperty;
        props = t.properties or { };
      in
      {
        __dydisnix_target = {
          property = p;
          present = isAttrs props && props ? ${p};
          value = if isAttrs props && props ? ${p} then enc props.${p} else null;
        };
      }
    else enc t;
  mapping = e:
    if isAttrs e && e ? target then mapAttrs (k: v: if k == "target" then target v else enc v) e
    else target e;
  entry = v:
    if isList v then map mapping v
    else if isAttrs v && v ? targets then
      mapAttrs (k: x: if k == "targets" && isList x then map mapping x else enc x) v
    else enc v;
  distribution =
    let evaluated = callWith model ({ inherit infrastructure; } // extraParams); in
    if isAttrs evaluated then mapAttrs (_: entry) evaluated else enc evaluated;
in
if kind == "services" then services
else if kind == "distribution" then distribution
else plain
