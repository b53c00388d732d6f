// Package portassign assigns unique IDs (TCP ports, UIDs, ...) to services.
//
// It holds two assigners:
//
//   - the ID assigner of dydisnix-id-assign (AssignIDs): ID resources with
//     min/max/scope/step, services that ask for IDs through a list property
//     (requiresUniqueIdsFor by default), and an ids file that remembers
//     every assignment and the last ID handed out per resource (and per
//     target in machine scope);
//   - the legacy port assigner of dydisnix-port-assign (AssignPorts): a
//     shared port pool and one private pool per target, selected by the
//     service property portAssign = "shared" | "private".
//
// Both are pure functions over values: they never read or write files.
// The file readers (LoadIDs, LoadResources, LoadPortConfig) and the atomic
// writer (WriteFile) live in files.go; the exact Nix printers in nixtext.go.
package portassign
