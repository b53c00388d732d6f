# The augmentation model of the reference test suite (tests/augment-infra.nix):
# every target gets the property augment.
{infrastructure, lib}:

lib.mapAttrs (targetName: target:
  target // {
    properties = target.properties // { augment = "augment"; };
  }
) infrastructure
