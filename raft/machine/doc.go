// Package machine is Chronicle's deterministic state machine: it decides
// each command against the state at its log position, producing facts (log
// records) or a typed rejection, and folds the facts into the projections in
// the same Pebble batch as the records and the applied Raft index.
//
// It is the command processor behind the Raft FSM, kept free of Raft so that
// offline replay and tests can drive it directly.
//
// Invariants:
//   - Deciding is a pure function of (state, command): the command carries
//     its timestamp, random IDs and hashes, filled in by the API node. No
//     wall clock, randomness, map iteration order or goroutines here.
//   - Each command commits in its own batch, so a command is all-or-nothing
//     (a room creation rejected at its fifth event leaves no record).
//   - The applied Raft index is written in the batch of the state it
//     produced; Apply skips any index at or below it, so a replayed Raft log
//     applies nothing twice.
//   - The log head is published (waking long-polls) once per Raft batch.
//   - In-memory helpers only skip reads, never change an answer: the parsed
//     PDU cache holds stored events, and the transaction filter
//     (txnfilter.go) holds every stored transaction key (and perhaps
//     others), rebuilt from the store at open and after a restore.
//
// Goroutines: Apply and Publish run only on the FSM goroutine. View may be
// called from any goroutine; Restore excludes it while it swaps the store.
//
// Events are not signed until federation brings a server signing key. The
// one auth rule that reads a signature (a restricted join's
// join_authorised_via_users_server must be signed by the authoriser's
// server) is met for local authorisers by signing a transient copy with a
// key derived from the server name, checked and discarded at once; the
// stored PDU stays unsigned (see restricted.go).
//
// Room versions 1 and 2 have server-chosen event IDs ("$opaque:server"),
// which cannot be hashes of the event. Every command carries a random Salt
// drawn by the API node (NewCommand); the machine derives each such ID from
// the salt and the log position of the event's record with HMAC-SHA256, so
// every node picks the same IDs (see v1events.go).
package machine
