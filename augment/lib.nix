# A small subset of nixpkgs' lib for augmentation models ({infrastructure, lib}: ...),
# written for dydisnix (nixpkgs is not needed). Functions behave like their nixpkgs
# namesakes. lib.attrsets, lib.lists, lib.strings and lib.trivial all refer to this set.
let
  b = builtins;
  lib = rec {
    # trivial
    id = x: x;
    const = x: _: x;
    flip = f: a: c: f c a;
    pipe = b.foldl' (x: f: f x);
    fix = f: let x = f x; in x;
    boolToString = v: if v then "true" else "false";
    max = x: y: if x > y then x else y;
    min = x: y: if x < y then x else y;
    mod = a: n: a - n * (a / n);
    inherit (b) isAttrs isList isString isInt isBool isFloat isFunction typeOf toString
      seq deepSeq tryEval throw abort trace toJSON fromJSON;
    isPath = b.isPath or (v: b.typeOf v == "path");

    # attribute sets
    inherit (b) attrNames attrValues hasAttr getAttr removeAttrs intersectAttrs
      listToAttrs mapAttrs catAttrs functionArgs;
    nameValuePair = name: value: { inherit name value; };
    filterAttrs = pred: set:
      listToAttrs (b.concatMap (name: let v = set.${name}; in
        if pred name v then [ (nameValuePair name v) ] else [ ]) (attrNames set));
    mapAttrs' = f: set: listToAttrs (map (attr: f attr set.${attr}) (attrNames set));
    mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (attrNames attrs);
    attrsToList = mapAttrsToList nameValuePair;
    mapAttrsRecursiveCond = cond: f: set:
      let recurse = path: mapAttrs (name: value:
            if isAttrs value && cond value then recurse (path ++ [ name ]) value
            else f (path ++ [ name ]) value);
      in recurse [ ] set;
    mapAttrsRecursive = mapAttrsRecursiveCond (_: true);
    genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
    optionalAttrs = cond: as: if cond then as else { };
    foldAttrs = op: nul: list_of_attrs:
      b.foldl' (acc: attrs: b.foldl' (acc2: name:
        acc2 // { ${name} = op attrs.${name} (acc2.${name} or nul); }) acc (attrNames attrs))
        { } (reverseList list_of_attrs);
    zipAttrsWith = f: sets: let names = unique (concatMap attrNames sets); in
      genAttrs names (name: f name (catAttrs name sets));
    zipAttrs = zipAttrsWith (_: values: values);
    recursiveUpdateUntil = pred: lhs: rhs:
      let f = attrPath:
        zipAttrsWith (n: values:
          let here = attrPath ++ [ n ]; in
          if b.length values == 1
             || pred here (b.elemAt values 1) (b.head values)
          then b.head values
          else f here values);
      in f [ ] [ rhs lhs ];
    recursiveUpdate = lhs: rhs:
      recursiveUpdateUntil (path: lhs: rhs: !(isAttrs lhs && isAttrs rhs)) lhs rhs;
    attrByPath = attrPath: default: e:
      let attr = b.head attrPath; in
      if attrPath == [ ] then e
      else if e ? ${attr} then attrByPath (b.tail attrPath) default e.${attr}
      else default;
    hasAttrByPath = attrPath: e:
      let attr = b.head attrPath; in
      if attrPath == [ ] then true
      else if e ? ${attr} then hasAttrByPath (b.tail attrPath) e.${attr}
      else false;
    getAttrFromPath = attrPath: set:
      attrByPath attrPath (throw "cannot find attribute `${concatStringsSep "." attrPath}'") set;
    setAttrByPath = attrPath: value:
      if attrPath == [ ] then value
      else { ${b.head attrPath} = setAttrByPath (b.tail attrPath) value; };
    collect = pred: attrs:
      if pred attrs then [ attrs ]
      else if isAttrs attrs then concatMap (collect pred) (attrValues attrs)
      else [ ];
    isDerivation = v: isAttrs v && (v.type or null) == "derivation";

    # lists
    inherit (b) head tail length elemAt filter elem concatLists concatMap genList
      sort any all partition;
    map = b.map;
    foldl' = b.foldl';
    foldl = op: nul: list: b.foldl' op nul list;
    foldr = op: nul: list:
      let len = length list;
          fold' = n: if n == len then nul else op (elemAt list n) (fold' (n + 1));
      in fold' 0;
    fold = foldr;
    imap0 = f: list: genList (n: f n (elemAt list n)) (length list);
    imap1 = f: list: genList (n: f (n + 1) (elemAt list n)) (length list);
    optional = cond: elem: if cond then [ elem ] else [ ];
    optionals = cond: elems: if cond then elems else [ ];
    toList = x: if isList x then x else [ x ];
    singleton = x: [ x ];
    range = first: last: if first > last then [ ] else genList (n: first + n) (last - first + 1);
    last = list: assert list != [ ]; elemAt list (length list - 1);
    init = list: assert list != [ ]; genList (elemAt list) (length list - 1);
    take = count: list: genList (elemAt list) (min count (length list));
    drop = count: list: let len = length list; in
      if count >= len then [ ] else genList (n: elemAt list (n + count)) (len - count);
    reverseList = xs: let l = length xs; in genList (n: elemAt xs (l - n - 1)) l;
    flatten = x: if isList x then concatMap flatten x else [ x ];
    unique = b.foldl' (acc: e: if elem e acc then acc else acc ++ [ e ]) [ ];
    count = pred: b.foldl' (c: x: if pred x then c + 1 else c) 0;
    findFirst = pred: default: list:
      let found = filter pred list; in if found == [ ] then default else head found;
    remove = e: filter (x: x != e);
    subtractLists = e: filter (x: !(elem x e));
    intersectLists = e: filter (x: elem x e);
    groupBy = pred: b.foldl' (r: e: let key = pred e; in r // { ${key} = (r.${key} or [ ]) ++ [ e ]; }) { };
    sum = b.foldl' (x: y: x + y) 0;
    zipListsWith = f: fst: snd: genList (n: f (elemAt fst n) (elemAt snd n)) (min (length fst) (length snd));

    # strings
    inherit (b) stringLength substring replaceStrings match split;
    concatStrings = b.concatStringsSep "";
    concatStringsSep = b.concatStringsSep;
    concatMapStrings = f: list: concatStrings (map f list);
    concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
    optionalString = cond: string: if cond then string else "";
    hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
    hasSuffix = suffix: content:
      let lenContent = stringLength content; lenSuffix = stringLength suffix; in
      lenContent >= lenSuffix && substring (lenContent - lenSuffix) lenContent content == suffix;
    hasInfix = infix: content: match ".*${b.replaceStrings
      [ "\\" "." "*" "+" "?" "(" ")" "[" "]" "{" "}" "|" "^" "$" ]
      [ "\\\\" "\\." "\\*" "\\+" "\\?" "\\(" "\\)" "\\[" "\\]" "\\{" "\\}" "\\|" "\\^" "\\$" ] infix}.*" content != null;
    removePrefix = prefix: str:
      if hasPrefix prefix str then substring (stringLength prefix) (-1) str else str;
    removeSuffix = suffix: str:
      if hasSuffix suffix str then substring 0 (stringLength str - stringLength suffix) str else str;
    splitString = sep: s: filter isString (split (b.replaceStrings
      [ "\\" "." "*" "+" "?" "(" ")" "[" "]" "{" "}" "|" "^" "$" ]
      [ "\\\\" "\\." "\\*" "\\+" "\\?" "\\(" "\\)" "\\[" "\\]" "\\{" "\\}" "\\|" "\\^" "\\$" ] sep) s);
    toUpper = replaceStrings (b.genList (n: substring n 1 "abcdefghijklmnopqrstuvwxyz") 26)
      (b.genList (n: substring n 1 "ABCDEFGHIJKLMNOPQRSTUVWXYZ") 26);
    toLower = replaceStrings (b.genList (n: substring n 1 "ABCDEFGHIJKLMNOPQRSTUVWXYZ") 26)
      (b.genList (n: substring n 1 "abcdefghijklmnopqrstuvwxyz") 26);
    toInt = s: let v = b.fromJSON s; in if isInt v then v else throw "lib.toInt: could not convert `${s}' to an int";
    fileContents = file: removeSuffix "\n" (b.readFile file);

    # namespaces as in nixpkgs
    attrsets = lib;
    lists = lib;
    strings = lib;
    trivial = lib;
  };
in
lib
