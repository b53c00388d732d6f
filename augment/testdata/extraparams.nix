# An augmentation model that takes an argument from --extra-params.
{ infrastructure, lib, zoneOf }:
lib.mapAttrs (name: t: t // { properties = t.properties // { zone = zoneOf name; }; }) infrastructure
