# A minimal stand-in for the NixOS module system, enough to evaluate
# nix/module.nix without nixpkgs (which CI cannot fetch): lib.mkOption,
# mkEnableOption, mkIf, mkMerge, the few types the module uses (each with
# a check), and an evaluation that gives every option the user's value
# (checked against its type, unknown options rejected) or its default.
# It does not merge definitions from several modules, nor check what the
# module defines outside its options (systemd.services): the Go test compares
# that with the unit files.
#
#   nix-instantiate --eval --strict --json nixos-stub.nix \
#     --arg module ../../nix/module.nix --arg settings '{ agent.enable = true; ... }'
{ module, settings }:

let
  mkType = name: check: { _type = "type"; inherit name check; };

  types = {
    bool = mkType "bool" builtins.isBool;
    str = mkType "str" builtins.isString;
    package = mkType "package" (v: builtins.isAttrs v && v ? outPath);
    listOf = t: mkType "listOf ${t.name}" (v: builtins.isList v && builtins.all t.check v);
    nullOr = t: mkType "nullOr ${t.name}" (v: v == null || t.check v);
    strMatching = re: mkType "strMatching ${re}" (v: builtins.isString v && builtins.match re v != null);
  };

  lib = {
    inherit types;
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: {
      _type = "option";
      type = types.bool;
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkDefault = v: v;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    concatStringsSep = builtins.concatStringsSep;
    concatMap = f: list: builtins.concatLists (map f list);
    optionals = cond: list: if cond then list else [ ];
  };

  package = {
    outPath = "/nix/store/00000000000000000000000000000000-dydisnix";
    name = "dydisnix";
  };
  pkgs = { callPackage = path: args: package; };

  isOption = v: builtins.isAttrs v && (v._type or "") == "option";

  # The value of every option under opts: the setting (type-checked) or the
  # default; a setting no option declares is an error, as in NixOS.
  values = where: opts: set:
    let
      unknown = builtins.filter (n: !(opts ? ${n})) (builtins.attrNames set);
    in
    if unknown != [ ] then throw "The option `${where}.${builtins.head unknown}' does not exist."
    else builtins.mapAttrs
      (name: opt:
        let at = "${where}.${name}"; in
        if isOption opt then
          if set ? ${name} then
            (if opt.type.check set.${name} then set.${name}
            else throw "The option `${at}' is not of type `${opt.type.name}'.")
          else if opt ? default then opt.default
          else throw "The option `${at}' is used but not defined."
        else values at opt (set.${name} or { }))
      opts;

  # The options as data: type, default (when it is plain data) and
  # description, per dotted name.
  declarations = prefix: opts: builtins.concatLists (builtins.attrValues (builtins.mapAttrs
    (name: opt:
      let at = if prefix == "" then name else "${prefix}.${name}"; in
      if isOption opt then [{
        name = at;
        type = opt.type.name or null;
        description = opt.description or null;
        hasDefault = opt ? default;
      }]
      else declarations at opt)
    opts));

  # mkIf and mkMerge resolved.
  resolve = v:
    if builtins.isAttrs v && (v._type or "") == "if" then (if v.condition then resolve v.content else { })
    else if builtins.isAttrs v && (v._type or "") == "merge" then
      builtins.foldl' merge { } (map resolve v.contents)
    else if builtins.isAttrs v && !(v ? outPath) then builtins.mapAttrs (_: resolve) v
    else v;

  merge = a: b: a // builtins.mapAttrs
    (n: bv: if a ? ${n} && builtins.isAttrs a.${n} && builtins.isAttrs bv then merge a.${n} bv else bv)
    b;

  config = {
    services.dydisnix = (values "services" evaluated.options.services { dydisnix = settings; }).dydisnix;
    nix.package = "/nix/store/00000000000000000000000000000000-nix";
  };

  evaluated = import module { inherit config lib pkgs; };
in
{
  options = declarations "" evaluated.options;
  config = resolve evaluated.config;
}
