// Package store is Chronicle's durable Raft storage: a hashicorp/raft
// LogStore and StableStore sharing one Pebble database.
//
// # What it owns
//
// The Pebble directory passed to Open. Nothing else may write to it; the
// Raft snapshot store and the application state machine live elsewhere.
//
// # Invariants
//
//   - Every write (StoreLogs, DeleteRange, Set, SetUint64) is committed with
//     pebble.Sync, so a nil return means the data survives a crash. Raft
//     relies on this before acknowledging entries and votes.
//   - StoreLogs writes all entries in one batch: all or none become durable.
//   - Key layout (keys.go): log entries at 'l' + uint64 big-endian index, so
//     byte order is index order; stable keys at 's' + key bytes. Every
//     iterator is bounded by [prefix, prefix+1).
//   - FirstIndex/LastIndex are served from an in-memory cache loaded on Open
//     and updated under a write lock after each successful write; they are 0
//     when the log is empty.
//   - Log values use the explicit versioned codec in codec.go, which
//     round-trips every raft.Log field (AppendedAt to the nanosecond, as an
//     instant in UTC).
//
// # Error contracts
//
// These are compared by identity or text inside hashicorp/raft and are never
// wrapped:
//
//   - GetLog of a missing index returns raft.ErrLogNotFound.
//   - Get and GetUint64 of a missing key return ErrKeyNotFound, whose text is
//     exactly "not found"; GetUint64 also returns 0.
//
// All other errors are wrapped with context.
//
// # Callers
//
// A single raft.Raft instance. Its main goroutine (leader appends, follower
// AppendEntries, conflict truncation, vote/term persistence) writes; the
// snapshot goroutine calls DeleteRange to compact the head; per-follower
// replication goroutines and API calls read via GetLog, FirstIndex and
// LastIndex concurrently. All methods are safe for concurrent use.
//
// Store deliberately does not implement raft.MonotonicLogStore.
package store
