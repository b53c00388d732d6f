{
  groups = { "services" = "Services"; "services/logging" = "Logging"; };
  fields = [ "description" ];
  descriptions = { description = "What it does"; };
}
