// Package raft runs a Chronicle node: hashicorp/raft over our Pebble-backed
// log and stable store (raft/store), a TCP transport, file snapshots of the
// state store, and the FSM shim that hands committed commands to the state
// machine (raft/machine).
//
// Submit is the single entry point for writes: it proposes a command and
// returns the decided Result, or the typed *machine.Rejection. Leader
// forwarding belongs here too, so handlers never ask "am I the leader?":
// a follower pipelines its submits to the leader on one connection, which
// answers them in the order they arrived (pipeline.go, forward.go).
//
// Invariants:
//   - The Raft log and stable store are written with fsync; the state store
//     is not, because the applied index travels with the state and entries
//     at or below it are skipped on replay.
//   - A snapshot is reported complete only after the state store is
//     durable (its WAL synced), so skipping snapshot restore on start is
//     safe.
//   - An entry that cannot be applied stops the node loudly rather than let
//     replicas diverge.
//   - Barrier (a read index) returns only once the state machine itself
//     has run the leader's commit index: hashicorp/raft's own applied index
//     moves when an entry is queued for the FSM, before it runs.
//
// Goroutines: hashicorp/raft's FSM goroutine calls ApplyBatch, Snapshot and
// Restore; snapshot Persist runs on its own goroutine; Submit is safe from
// any goroutine.
package raft
