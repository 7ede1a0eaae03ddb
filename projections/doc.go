// Package projections owns the engine that folds log records into read
// models. Each projection lives in its own subpackage, owns one key prefix
// of the state store, and is updated in the same Pebble batch as the records
// it folds, so a reader never sees a record without its projections.
//
// Invariants:
//   - Projections run in a fixed order; a projection may read the state of
//     projections ordered before it (through the batch) but never writes it.
//   - Apply is deterministic: no wall clock, randomness or map order.
//   - Each projection's code version is stored beside its data. On open, if
//     any stored version differs from the code's, every projection is
//     rebuilt from record 1 before the node serves traffic (schema changes
//     are replays, not migrations). All of them, because a later projection
//     may read an earlier one while folding and must see it at that record.
//   - Digest covers every key and value under a projection's prefix, so two
//     stores with equal digests hold identical read models.
//
// Replays (a rebuild, a verifier's scratch store) read and decode the log
// on a second goroutine, ahead of the fold (Preparer), and commit each
// batch through a copy in key order (commitSorted in replay.go): the
// store ends up the same as if the batch itself were committed.
//
// Goroutines: Apply runs on the FSM's apply goroutine only (or a replay's
// fold goroutine); Prepare on a replay's read-ahead goroutine; query
// methods of the subpackages take a pebble.Reader and are safe anywhere.
package projections
