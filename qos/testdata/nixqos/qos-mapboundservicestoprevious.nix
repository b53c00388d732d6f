{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:

filters.mapBoundServicesToPrevious {
  inherit services;
  distribution = initialDistribution;
  inherit previousDistribution;
}
