// Package adapt is dydisnix's self-adaptive control loop: it takes
// infrastructure snapshots from a discovery.Source and runs a deploy pass
// (a Pass: rollout.Pass loads the models, augments, plans and deploys)
// whenever the augmented infrastructure or the models change.
//
// The decision of when to redeploy is a pure step, Decider.Decide, that
// takes observations with the current time as data: it debounces bursts,
// applies hysteresis to targets that leave and return (a grace period for
// unconfirmed removals, a stabilisation period for returns, a longer one
// for flapping machines), orders retries with exponential backoff and lets
// a newer change supersede a pending retry. Loop runs it against real
// inputs on an injectable Clock, serializes deploys and scheduled
// snapshots, and serves /status,
// /metrics, /healthz and an HTML status page with the deployment drawn by
// package visual. See docs/adapt.md for the rules and their numbers.
package adapt
