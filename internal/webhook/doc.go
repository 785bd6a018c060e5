// Package webhook holds everything a delivery attempt needs that is not a
// database or a workflow: endpoint secrets and their encryption at rest,
// Standard Webhooks signatures, the URL safety rules, and an HTTP sender
// that turns one attempt into an Outcome the caller can act on.
//
// The package is deliberately free of storage and Temporal so that the
// rules that protect receivers (signatures) and protect Dealcast itself
// (no requests into its own network) can be tested against real HTTP
// receivers in isolation.
package webhook
