// Package visualize is the documentation tools' room, pure: it turns a
// services model into Graphviz DOT diagrams and an HTML catalog with one
// page per group, and an infrastructure model into a DOT diagram of its
// machines and containers, in the text the original Dynamic Disnix tools
// (dydisnix-visualize-services, dydisnix-document-services,
// dydisnix-visualize-infra) print. It reads and writes nothing: the pages
// it returns are written, and rendered with graphviz's dot, by
// visualize/render.
//
// Groups: a service's "group" attribute is a "/"-separated path. A page
// for group G shows the services whose group is G or lies below it (G = ""
// is every service); a diagram adds the context outside G (the services
// its members use, drawn without their own dependencies, and the services
// that use a member, with only their edges into the picture). Grouping the
// subservices collapses everything below G into one dashed node per next
// path component, with the union of its members' edges.
//
// Every list is sorted byte-wise (services, containers, targets, groups),
// so the output is deterministic.
package visualize
