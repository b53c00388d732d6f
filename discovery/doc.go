// Package discovery finds the machines of the infrastructure model.
//
// Machines announce themselves over multicast DNS (DNS-SD service type
// _disnix._tcp) with a Publisher; a coordinator follows them with an
// MDNSSource, which keeps a membership table (a pure state machine, see
// Membership) and emits debounced infrastructure snapshots with the events
// that led to them: a target was added, removed (goodbye, TTL expiry, no
// answer, failed liveness probe) or changed (its TXT record differs).
//
// Two other sources implement the same Source interface: CommandSource runs
// an infrastructure generator (DYDISNIX_GENINFRA, e.g. disnix-capture-infra)
// and FileSource follows a static infrastructure file with fsnotify.
//
// The TXT format is the one of the original dydisnix-avahi publisher
// (properties."<name>"=<nix value>, containers.<c>."<name>"=<nix value>),
// extended with txtvers, a content hash, an optional agent endpoint and an
// optional signature; see EncodeTXT and ParseTXT.
package discovery
