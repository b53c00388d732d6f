{ pkgs, system }:
{
  db = pkgs.stdenv.mkDerivation { name = "db"; };
  api = { database }: pkgs.stdenv.mkDerivation { name = "api"; };
}
