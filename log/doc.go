// Package log owns Chronicle's system of record: an append-only, hash-chained
// sequence of records stored in the state store's Pebble instance.
//
// Invariants:
//   - Seq is dense and starts at 1; record N's PrevHash is record N-1's hash
//     (the zero hash for record 1), so the log is a hash chain that can be
//     verified end to end by anyone holding a copy.
//   - Records are only ever appended, inside a caller's Pebble batch, so the
//     records and the projections folded from them commit atomically.
//   - The head is published (and waiters woken) only after the caller's batch
//     has committed; readers never observe a position that is not durable in
//     the state store.
//
// Goroutines: Append/Publish/Abort are called only by the FSM's apply
// goroutine. Head, Wait, Get and Scan are safe from any goroutine.
//
// Key space: this package owns the prefixes in keys.go; projections own the
// others.
package log
