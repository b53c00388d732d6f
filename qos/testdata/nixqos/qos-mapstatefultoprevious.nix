{services, infrastructure, initialDistribution, previousDistribution, filters, lib}:

filters.mapStatefulToPrevious {
  inherit services;
  distribution = initialDistribution;
  inherit previousDistribution;
}
