# Adds secrets to the machines that run a MySQL container, using the lib.
{infrastructure, lib}:

let
  withDb = lib.filterAttrs (name: target: target ? containers && target.containers ? mysql-database) infrastructure;
in
lib.recursiveUpdate infrastructure (lib.mapAttrs (name: target: lib.recursiveUpdate {
  containers.mysql-database.mysqlPassword = "pw-${name}";
  properties.dbHosts = lib.concatStringsSep "," (lib.attrNames withDb);
  properties.keyFile = ./augment.nix;
} (lib.optionalAttrs (lib.elem "ssd" (target.properties.tags or [])) {
  properties.fastDisk = true;
})) withDb)
