{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:

filters.graphcol {
  inherit services infrastructure;
}
