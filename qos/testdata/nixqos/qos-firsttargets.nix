{services, infrastructure, initialDistribution, previousDistribution, filters}:

# keeps the first candidate of every service, in plain Nix
builtins.listToAttrs (map (name: {
  inherit name;
  value = [ (builtins.head (builtins.getAttr name initialDistribution)) ];
}) (builtins.attrNames initialDistribution))
