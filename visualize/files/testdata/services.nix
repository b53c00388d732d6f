# The services of the original's tests/visualize, as a Disnix services
# function; the portal's description comes from --extra-params.
{ distribution, invDistribution, system, pkgs, portalDescription ? "Portal web application" }:

rec {
  errordb = { name = "errordb"; pkg = pkgs.errordb; type = "postgresql-database"; description = "Error database backend"; group = "services"; };
  loggingdb = { name = "loggingdb"; pkg = pkgs.loggingdb; type = "postgresql-database"; description = "Logging database backend"; group = "services/logging"; };
  loggingapi = {
    name = "loggingapi"; pkg = pkgs.loggingapi; type = "tomcat-webapplication"; description = "Logging API"; group = "services/logging";
    dependsOn = { inherit errordb loggingdb; };
  };
  portal = {
    name = "portal"; pkg = pkgs.portal; type = "tomcat-webapplication"; description = portalDescription;
    dependsOn = { inherit loggingapi; };
  };
}
