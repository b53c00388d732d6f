package deployer

// MaxProbeClients exposes maxProbeClients to the external tests.
const MaxProbeClients = maxProbeClients
